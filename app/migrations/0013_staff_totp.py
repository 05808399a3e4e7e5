"""Staff two-factor sign-in: the encrypted TOTP secret, its enrolment time, the last used step, recovery code hashes."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0012_booking_ticket_digest')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Staff',
            name='totp_secret_enc',
            field=fields.TextField(null=True),
        ),
        ops.AddField(
            model_name='Staff',
            name='totp_enrolled_at',
            field=fields.DatetimeField(null=True),
        ),
        ops.AddField(
            model_name='Staff',
            name='totp_last_step',
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name='Staff',
            name='totp_recovery',
            field=fields.JSONField(default=list),
        ),
    ]
