"""The booking sequence per citizen: PostgreSQL books in one statement that checks it (app/booking/service.py)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0009_feedback')]

    initial = False

    operations = [
        ops.CreateModel(
            name='BookingAccount',
            fields=[
                ('citizen_id', fields.UUIDField(primary_key=True, unique=True, db_index=True)),
                ('seq', fields.BigIntField(default=0)),
            ],
            options={'table': 'booking_account', 'app': 'models', 'pk_attr': 'citizen_id', 'table_description': "A citizen's booking sequence, bumped by every new booking (PostgreSQL's one-statement booking)."},
            bases=['Model'],
        ),
    ]
