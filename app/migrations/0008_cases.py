from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.cases.models import CaseStatus
from json import dumps, loads
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0007_one_booking_per_matter_day')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Case',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('case_no', fields.CharField(unique=True, max_length=32)),
                ('matter_code', fields.CharField(db_index=True, max_length=40)),
                ('matter_name', fields.CharField(max_length=200)),
                ('guide_version', fields.IntField()),
                ('department_code', fields.CharField(db_index=True, max_length=32)),
                ('hall_code', fields.CharField(db_index=True, max_length=32)),
                ('section', fields.CharField(max_length=20)),
                ('citizen_id', fields.UUIDField(db_index=True)),
                ('agent', fields.BooleanField(default=False)),
                ('principal_kind', fields.CharField(max_length=10)),
                ('principal_name_enc', fields.TextField(unique=False)),
                ('principal_id_enc', fields.TextField(unique=False)),
                ('principal_id_bidx', fields.CharField(db_index=True, max_length=64)),
                ('principal_phone_enc', fields.TextField(null=True, unique=False)),
                ('form', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('delivery', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('tracking_no', fields.CharField(null=True, max_length=40)),
                ('status', fields.CharEnumField(db_index=True, description='submitted: submitted\naccepted: accepted\nrejected: rejected\ncorrection_required: correction_required\nresubmitted: resubmitted\nunder_review: under_review\nsuspended: suspended\napproved: approved\ndenied: denied\ndelivered: delivered\ncompleted: completed\nwithdrawn: withdrawn', enum_type=CaseStatus, max_length=20)),
                ('resume_status', fields.CharEnumField(null=True, description='submitted: submitted\naccepted: accepted\nrejected: rejected\ncorrection_required: correction_required\nresubmitted: resubmitted\nunder_review: under_review\nsuspended: suspended\napproved: approved\ndenied: denied\ndelivered: delivered\ncompleted: completed\nwithdrawn: withdrawn', enum_type=CaseStatus, max_length=20)),
                ('promised_days', fields.IntField()),
                ('accepted_on', fields.DateField(null=True)),
                ('due_on', fields.DateField(null=True)),
                ('warn_on', fields.DateField(null=True)),
                ('suspended_on', fields.DateField(null=True)),
                ('suspended_days', fields.IntField(default=0)),
                ('correction', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('query_code_hash', fields.CharField(max_length=64)),
                ('version', fields.IntField(default=1)),
                ('submitted_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('decided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('completed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'case_record', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One application (办件) from submission to completion.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CaseEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('case_id', fields.UUIDField(db_index=True)),
                ('action', fields.CharField(max_length=24)),
                ('from_status', fields.CharField(null=True, max_length=20)),
                ('to_status', fields.CharField(max_length=20)),
                ('actor_kind', fields.CharField(max_length=10)),
                ('actor_id', fields.CharField(null=True, max_length=64)),
                ('public_text', fields.CharField(max_length=500)),
                ('internal_note', fields.CharField(default='', max_length=1000)),
                ('data', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'case_event', 'app': 'models', 'pk_attr': 'id', 'table_description': "One step of a case's timeline: who did what, when, what the citizen is told and the internal note."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CaseMaterial',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('case_id', fields.UUIDField(db_index=True)),
                ('name', fields.CharField(max_length=200)),
                ('upload_id', fields.UUIDField()),
                ('round', fields.SmallIntField(default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'case_material', 'app': 'models', 'pk_attr': 'id', 'table_description': "A file handed in for one of the guide's materials (a 补正 adds a later round)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CaseSequence',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('prefix', fields.CharField(max_length=8)),
                ('day', fields.DateField()),
                ('issued', fields.IntField(default=0)),
            ],
            options={'table': 'case_sequence', 'app': 'models', 'unique_together': (('prefix', 'day'),), 'pk_attr': 'id', 'table_description': 'The last case number issued per prefix and day (one upsert per case).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Upload',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('owner_id', fields.UUIDField(db_index=True)),
                ('sha256', fields.CharField(db_index=True, max_length=64)),
                ('size', fields.BigIntField()),
                ('file_type', fields.CharField(max_length=8)),
                ('filename', fields.CharField(max_length=120)),
                ('case_id', fields.UUIDField(null=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'upload', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A file a citizen uploaded: content-addressed on disk, bound to its owner until a case uses it.'},
            bases=['Model'],
        ),
    ]
