"""一件事: a matter may be a bundle (kind `bundle`); a case may be a bundle application (kind `bundle`) or one
member's part of one (kind `part`, with its stage)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("models", "0015_audit_log")]

    initial = False

    operations = [
        ops.AddField(
            model_name='Matter',
            name='kind',
            field=fields.CharField(max_length=8, default='matter'),
        ),
        ops.AddField(
            model_name="Case",
            name="kind",
            field=fields.CharField(max_length=8, default="single"),
        ),
        ops.AddField(
            model_name="Case",
            name="bundle_id",
            field=fields.UUIDField(null=True, db_index=True),
        ),
        ops.AddField(
            model_name="Case",
            name="stage",
            field=fields.SmallIntField(null=True),
        ),
    ]
