"""The audit log: append-only, enforced by the database (a trigger refuses UPDATE and DELETE on both backends)."""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.migrations import operations as ops

_SQLITE = [
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
]
_SQLITE_REVERSE = ["DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete"]
# A trigger rather than REVOKE: it holds for the table's owner too (the application's own role). TRUNCATE
# (like DROP) stays the owner's maintenance operation: row triggers do not see it, and tests empty tables with it.
_POSTGRES = [
    "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege'; END $$",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
]
_POSTGRES_REVERSE = [
    "DROP TRIGGER audit_log_append_only ON audit_log",
    "DROP FUNCTION audit_log_append_only()",
]


async def _run(editor, statements):
    # Straight to the connection: the SQLite schema editor splits statements at ";", a trigger body holds one.
    for sql in statements:
        await editor.client.execute_query(sql)


async def _forward(apps, editor):
    postgres = editor.client.capabilities.dialect == "postgres"
    await _run(editor, _POSTGRES if postgres else _SQLITE)


async def _backward(apps, editor):
    postgres = editor.client.capabilities.dialect == "postgres"
    await _run(editor, _POSTGRES_REVERSE if postgres else _SQLITE_REVERSE)


class Migration(migrations.Migration):
    dependencies = [('models', '0014_queue_calls')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', fields.BigIntField(primary_key=True, unique=True, db_index=True)),
                ('at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('actor', fields.CharField(db_index=True, max_length=80)),
                ('actor_name', fields.CharField(default='', max_length=100)),
                ('actor_role', fields.CharField(default='', max_length=16)),
                ('ip', fields.CharField(default='', max_length=64)),
                ('action', fields.CharField(db_index=True, max_length=64)),
                ('object_type', fields.CharField(db_index=True, max_length=32)),
                ('object_id', fields.CharField(db_index=True, max_length=100)),
                ('summary', fields.CharField(default='', max_length=500)),
                ('changes', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('request_id', fields.CharField(default='', max_length=64)),
            ],
            options={'table': 'audit_log', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Who did what to which object, when, from where (its changes redacted before they are stored).'},
            bases=['Model'],
        ),
        ops.RunPython(_forward, _backward),
    ]
