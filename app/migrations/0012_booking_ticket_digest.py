"""Bookings record their ticket's digest: a desk scanning exactly that ticket skips the signature check."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0011_desk_scan_checkin')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Booking',
            name='ticket_digest',
            field=fields.CharField(null=True, max_length=64),
        ),
    ]
