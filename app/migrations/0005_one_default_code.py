"""At most one default code per matter, enforced by the database (the same SQL on SQLite and PostgreSQL)."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0004_qr_codes")]

    operations = [
        ops.RunSQL(
            "CREATE UNIQUE INDEX uq_qr_code_one_default ON qr_code (matter_code) WHERE is_default",
            reverse_sql="DROP INDEX uq_qr_code_one_default",
        ),
    ]
