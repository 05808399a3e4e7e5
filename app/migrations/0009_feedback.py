from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.feedback.models import QuestionStatus, RectificationStatus, SubjectType
from json import dumps, loads
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0008_cases')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Question',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('matter_code', fields.CharField(db_index=True, max_length=40)),
                ('matter_name', fields.CharField(max_length=200)),
                ('department_code', fields.CharField(db_index=True, max_length=32)),
                ('citizen_id', fields.UUIDField(db_index=True)),
                ('text', fields.TextField(unique=False)),
                ('status', fields.CharEnumField(db_index=True, description='pending: pending\nanswered: answered', enum_type=QuestionStatus, max_length=10)),
                ('asked_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('due_on', fields.DateField()),
                ('warn_on', fields.DateField()),
                ('answer', fields.TextField(null=True, unique=False)),
                ('answered_by', fields.UUIDField(null=True)),
                ('answered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('faq_question', fields.TextField(null=True, unique=False)),
                ('faq_answer', fields.TextField(null=True, unique=False)),
                ('published_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'consultation', 'app': 'models', 'pk_attr': 'id', 'table_description': "A citizen's question about a matter, answered by the matter's department within a service level."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Rating',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('subject_type', fields.CharEnumField(description='case: case\nvisit: visit\nconsultation: consultation', enum_type=SubjectType, max_length=14)),
                ('subject_id', fields.CharField(max_length=64)),
                ('citizen_id', fields.UUIDField(db_index=True)),
                ('level', fields.SmallIntField()),
                ('tags', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('comment', fields.CharField(default='', max_length=500)),
                ('addendum', fields.CharField(null=True, max_length=500)),
                ('addendum_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('matter_code', fields.CharField(db_index=True, max_length=40)),
                ('department_code', fields.CharField(db_index=True, max_length=32)),
                ('hall_code', fields.CharField(null=True, db_index=True, max_length=32)),
                ('counter', fields.CharField(null=True, max_length=16)),
                ('excluded', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'rating', 'app': 'models', 'unique_together': (('subject_type', 'subject_id'),), 'pk_attr': 'id', 'table_description': 'A five-level rating (5 非常满意 … 1 非常不满意) of one case, visit or answered question.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Rectification',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('rating_id', fields.UUIDField(unique=True)),
                ('department_code', fields.CharField(db_index=True, max_length=32)),
                ('hall_code', fields.CharField(null=True, max_length=32)),
                ('status', fields.CharEnumField(db_index=True, description='open: open\nverified: verified\nrectified: rectified\nreplied: replied\nclosed: closed\ncontested: contested\ndismissed: dismissed', enum_type=RectificationStatus, max_length=10)),
                ('resume_status', fields.CharEnumField(null=True, description='open: open\nverified: verified\nrectified: rectified\nreplied: replied\nclosed: closed\ncontested: contested\ndismissed: dismissed', enum_type=RectificationStatus, max_length=10)),
                ('opened_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('due_on', fields.DateField()),
                ('reply', fields.TextField(null=True, unique=False)),
                ('closed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('version', fields.IntField(default=1)),
            ],
            options={'table': 'rectification', 'app': 'models', 'pk_attr': 'id', 'table_description': 'The follow-up a bad rating opens for the responsible department, with a deadline in working days.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RectificationStep',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('rectification_id', fields.UUIDField(db_index=True)),
                ('action', fields.CharField(max_length=16)),
                ('from_status', fields.CharField(max_length=10)),
                ('to_status', fields.CharField(max_length=10)),
                ('actor_kind', fields.CharField(max_length=10)),
                ('actor_id', fields.CharField(null=True, max_length=64)),
                ('note', fields.CharField(default='', max_length=1000)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'rectification_step', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One recorded step of a rectification: who, what, when, and the note.'},
            bases=['Model'],
        ),
    ]
