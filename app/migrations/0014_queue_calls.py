"""The call queue (叫号): which numbers counters have called, and the announcements a hall's screen shows."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0013_staff_totp')]

    initial = False

    operations = [
        ops.CreateModel(
            name='QueueTicket',
            fields=[
                ('checkin_id', fields.UUIDField(primary_key=True, unique=True, db_index=True)),
                ('hall_code', fields.CharField(max_length=32)),
                ('day', fields.DateField()),
                ('queue_no', fields.CharField(max_length=8)),
                ('state', fields.CharField(max_length=10)),
                ('counter', fields.CharField(max_length=16)),
                ('called_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'queue_ticket', 'app': 'models', 'pk_attr': 'checkin_id', 'indexes': [Index(fields=['hall_code', 'day'])]},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='QueueCall',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('hall_code', fields.CharField(max_length=32)),
                ('day', fields.DateField()),
                ('checkin_id', fields.UUIDField()),
                ('queue_no', fields.CharField(max_length=8)),
                ('counter', fields.CharField(max_length=16)),
                ('action', fields.CharField(max_length=10)),
                ('staff_id', fields.UUIDField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'queue_call', 'app': 'models', 'pk_attr': 'id', 'indexes': [Index(fields=['hall_code', 'id'])]},
            bases=['Model'],
        ),
    ]
