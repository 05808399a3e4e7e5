from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.matters.models import MatterStatus, VersionStatus
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Department',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=32)),
                ('name', fields.CharField(max_length=200)),
                ('phone', fields.CharField(default='', max_length=40)),
            ],
            options={'table': 'department', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A department (实施主体) that carries out matters.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Hall',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=32)),
                ('name', fields.CharField(max_length=200)),
                ('kind', fields.CharField(default='main', max_length=8)),
                ('address', fields.CharField(max_length=200)),
                ('phone', fields.CharField(max_length=40)),
                ('hours', fields.CharField(max_length=200)),
                ('latitude', fields.FloatField(null=True)),
                ('longitude', fields.FloatField(null=True)),
            ],
            options={'table': 'hall', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A service hall or sub-hall: where a citizen goes.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='JobLease',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('owner', fields.CharField(default='', max_length=64)),
                ('until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'job_lease', 'app': 'models', 'pk_attr': 'name', 'table_description': 'Who runs a cluster-wide job, until when.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Matter',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=40)),
                ('name', fields.CharField(db_index=True, max_length=200)),
                ('section', fields.CharField(db_index=True, max_length=20)),
                ('department_code', fields.CharField(db_index=True, max_length=32)),
                ('hall_code', fields.CharField(max_length=32)),
                ('visits', fields.SmallIntField(default=1)),
                ('online_depth', fields.SmallIntField(default=1)),
                ('status', fields.CharEnumField(default=MatterStatus.active, description='active: active\nretired: retired', enum_type=MatterStatus, max_length=10)),
                ('successor_code', fields.CharField(null=True, max_length=40)),
                ('published_no', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'matter', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A government service matter. Its search fields mirror its published guide.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MatterVersion',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('matter', fields.ForeignKeyField('models.Matter', source_field='matter_id', db_constraint=True, to_field='id', related_name='versions', on_delete=OnDelete.CASCADE)),
                ('no', fields.IntField()),
                ('status', fields.CharEnumField(default=VersionStatus.draft, description='draft: draft\npublished: published\nsuperseded: superseded', enum_type=VersionStatus, max_length=12)),
                ('content', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('content_hash', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('published_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('superseded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'matter_version', 'app': 'models', 'unique_together': (('matter', 'no'),), 'pk_attr': 'id', 'table_description': 'One version of a matter guide. Published content never changes.'},
            bases=['Model'],
        ),
    ]
