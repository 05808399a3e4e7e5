"""At most one published version per matter, enforced by the database (partial unique index).

The same SQL runs on SQLite and PostgreSQL.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [
        ops.RunSQL(
            "CREATE UNIQUE INDEX uq_matter_version_one_published ON matter_version (matter_id) "
            "WHERE status = 'published'",
            reverse_sql="DROP INDEX uq_matter_version_one_published",
        ),
    ]
