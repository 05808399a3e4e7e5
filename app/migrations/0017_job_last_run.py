"""Cluster jobs: when a job last ran, kept beside its lease, so a worker taking over a lease keeps the job's period."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0016_case_bundles")]

    initial = False

    operations = [
        ops.AddField(
            model_name="JobLease",
            name="last_run",
            field=fields.DatetimeField(null=True),
        ),
    ]
