from tortoise import migrations
from tortoise.migrations import operations as ops
from qr.models import CodeAction, CodeStatus, ScanChannel
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_identity')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Code',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('slug', fields.CharField(unique=True, max_length=16)),
                ('matter_code', fields.CharField(db_index=True, max_length=40)),
                ('action', fields.CharEnumField(default=CodeAction.guide, description='guide: guide\nbook: book\napply: apply\nprogress: progress\nconsult: consult\nrate: rate', enum_type=CodeAction, max_length=10)),
                ('status', fields.CharEnumField(default=CodeStatus.active, description='active: active\ndisabled: disabled', enum_type=CodeStatus, max_length=10)),
                ('valid_since', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('valid_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('max_scans', fields.IntField(null=True)),
                ('scans', fields.BigIntField(default=0)),
                ('label', fields.CharField(default='', max_length=200)),
                ('hall_code', fields.CharField(null=True, max_length=32)),
                ('is_default', fields.BooleanField(default=False)),
                ('created_by', fields.CharField(default='system', max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'qr_code', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A printed code: a stable slug whose target is decided at scan time.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InvalidScan',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('reason', fields.CharField(max_length=20)),
                ('scans', fields.BigIntField(default=0)),
            ],
            options={'table': 'qr_invalid_scan', 'app': 'models', 'unique_together': (('day', 'reason'),), 'pk_attr': 'id', 'table_description': 'Scans that did not resolve, per day and reason (unknown, disabled, expired, exhausted ...).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ScanDaily',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('slug', fields.CharField(max_length=16)),
                ('day', fields.DateField()),
                ('channel', fields.CharEnumField(description='wechat: wechat\nminiprogram: miniprogram\nbrowser: browser\napp: app', enum_type=ScanChannel, max_length=12)),
                ('scans', fields.BigIntField(default=0)),
            ],
            options={'table': 'qr_scan_daily', 'app': 'models', 'unique_together': (('slug', 'day', 'channel'),), 'pk_attr': 'id', 'table_description': 'Counted scans of one code on one day (Asia/Shanghai) from one channel.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ScanVisitors',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('slug', fields.CharField(max_length=16)),
                ('day', fields.DateField()),
                ('visitors', fields.BigIntField(default=0)),
            ],
            options={'table': 'qr_scan_visitors', 'app': 'models', 'unique_together': (('slug', 'day'),), 'pk_attr': 'id', 'table_description': 'Unique visitors of one code on one day (HyperLogLog estimate, persisted from Redis).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WeChatCode',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('matter_code', fields.CharField(max_length=40)),
                ('kind', fields.CharField(max_length=12)),
                ('slug', fields.CharField(max_length=16)),
                ('ticket', fields.CharField(null=True, max_length=200)),
                ('url', fields.CharField(null=True, max_length=500)),
                ('image', fields.BinaryField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'qr_wechat_code', 'app': 'models', 'unique_together': (('matter_code', 'kind'),), 'pk_attr': 'id', 'table_description': 'A code WeChat issued for a matter: an official-account scene QR or a mini-program code.'},
            bases=['Model'],
        ),
    ]
