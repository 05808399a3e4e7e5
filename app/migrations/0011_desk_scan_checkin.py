"""Desk scans name the check-in they made: its answer is rebuilt from it, so a check-in is one statement."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0010_booking_account')]

    initial = False

    operations = [
        ops.AddField(
            model_name='DeskScan',
            name='checkin_id',
            field=fields.UUIDField(null=True),
        ),
    ]
