"""One active booking per citizen, matter and day, enforced by the database (same SQL on SQLite and PostgreSQL)."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0006_booking")]

    operations = [
        ops.RunSQL(
            "CREATE UNIQUE INDEX uq_booking_active_per_day ON booking (citizen_id, matter_code, day) "
            "WHERE status = 'booked'",
            reverse_sql="DROP INDEX uq_booking_active_per_day",
        ),
    ]
