from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.booking.models import BookingStatus
from app.notify.models import NotificationStatus
from json import dumps, loads
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0005_one_default_code')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Booking',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('citizen_id', fields.UUIDField(db_index=True)),
                ('matter_code', fields.CharField(max_length=40)),
                ('hall_code', fields.CharField(max_length=32)),
                ('section', fields.CharField(max_length=20)),
                ('slot_id', fields.CharField(max_length=80)),
                ('day', fields.DateField()),
                ('starts_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('noshow_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('status', fields.CharEnumField(default=BookingStatus.booked, description='booked: booked\nchecked_in: checked_in\ncancelled: cancelled\nno_show: no_show', enum_type=BookingStatus, max_length=12)),
                ('version', fields.IntField(default=1)),
                ('queue_no', fields.CharField(null=True, max_length=8)),
                ('counter', fields.CharField(null=True, max_length=16)),
                ('checked_in_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('cancelled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'booking', 'app': 'models', 'pk_attr': 'id', 'table_description': "A citizen's counter appointment. `version` changes when a reschedule revokes the old ticket."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CheckIn',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('booking_id', fields.UUIDField(null=True, db_index=True)),
                ('hall_code', fields.CharField(max_length=32)),
                ('section', fields.CharField(max_length=20)),
                ('day', fields.DateField()),
                ('queue_no', fields.CharField(max_length=8)),
                ('counter', fields.CharField(null=True, max_length=16)),
                ('staff_id', fields.UUIDField()),
                ('kind', fields.CharField(max_length=10)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('undone_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'checkin', 'app': 'models', 'indexes': [Index(fields=['hall_code', 'day'])], 'pk_attr': 'id', 'table_description': 'A queue number handed out at a desk, for a booking or a walk-in.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Counter',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('hall_code', fields.CharField(max_length=32)),
                ('code', fields.CharField(max_length=16)),
                ('section', fields.CharField(max_length=20)),
                ('name', fields.CharField(default='', max_length=100)),
                ('active', fields.BooleanField(default=True)),
            ],
            options={'table': 'hall_counter', 'app': 'models', 'unique_together': (('hall_code', 'code'),), 'pk_attr': 'id', 'table_description': 'A window (窗口) of a hall, serving one business section.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DeskScan',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('staff_id', fields.UUIDField()),
                ('nonce', fields.CharField(max_length=64)),
                ('hall_code', fields.CharField(null=True, max_length=32)),
                ('result', fields.CharField(max_length=24)),
                ('booking_id', fields.UUIDField(null=True)),
                ('ticket_digest', fields.CharField(max_length=64)),
                ('response', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'desk_scan', 'app': 'models', 'unique_together': (('staff_id', 'nonce'),), 'indexes': [Index(fields=['hall_code', 'created_at'])], 'pk_attr': 'id', 'table_description': 'Every scan a desk submits, with the answer it got: the same nonce replays it, failures stay logged.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='HallClosure',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('hall_code', fields.CharField(max_length=32)),
                ('day', fields.DateField()),
                ('reason', fields.CharField(default='', max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'hall_closure', 'app': 'models', 'unique_together': (('hall_code', 'day'),), 'pk_attr': 'id', 'table_description': 'A one-off closure of a hall on a date (e.g. a power cut or an inspection).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='HallSchedule',
            fields=[
                ('hall_code', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=32)),
                ('config', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'hall_schedule', 'app': 'models', 'pk_attr': 'hall_code', 'table_description': "A hall's booking calendar: opening hours, slot length, capacity, window and cutoffs (JSON config)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='IdempotencyRecord',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('owner', fields.CharField(max_length=80)),
                ('key', fields.CharField(max_length=128)),
                ('fingerprint', fields.CharField(max_length=64)),
                ('status', fields.IntField(null=True)),
                ('response', fields.TextField(null=True, unique=False)),
                ('claimed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'idempotency_record', 'app': 'models', 'unique_together': (('owner', 'key'),), 'pk_attr': 'id', 'table_description': 'One claimed key: who, what request (fingerprint), and the answer once there is one.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('kind', fields.CharField(max_length=40)),
                ('citizen_id', fields.UUIDField(db_index=True)),
                ('subject_type', fields.CharField(max_length=20)),
                ('subject_id', fields.CharField(max_length=64)),
                ('payload', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('dedupe_key', fields.CharField(unique=True, max_length=128)),
                ('status', fields.CharEnumField(default=NotificationStatus.pending, description='pending: pending\nsent: sent\nfailed: failed\ncancelled: cancelled', enum_type=NotificationStatus, max_length=10)),
                ('send_after', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('attempts', fields.IntField(default=0)),
                ('claim_token', fields.UUIDField(null=True)),
                ('claimed_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('channel', fields.CharField(null=True, max_length=20)),
                ('msgid', fields.CharField(null=True, max_length=40)),
                ('last_error', fields.CharField(null=True, max_length=300)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'notification', 'app': 'models', 'indexes': [Index(fields=['status', 'send_after']), Index(fields=['subject_type', 'subject_id'])], 'pk_attr': 'id', 'table_description': 'A message to a citizen, written with the change it announces and sent by the delivery worker.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='QueueCounter',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('hall_code', fields.CharField(max_length=32)),
                ('section', fields.CharField(max_length=20)),
                ('day', fields.DateField()),
                ('issued', fields.IntField(default=0)),
            ],
            options={'table': 'queue_counter', 'app': 'models', 'unique_together': (('hall_code', 'section', 'day'),), 'pk_attr': 'id', 'table_description': 'The last queue number given in a hall section on a day.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RevokedTicket',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('booking_id', fields.UUIDField()),
                ('version', fields.IntField()),
                ('hall_code', fields.CharField(db_index=True, max_length=32)),
                ('reason', fields.CharField(max_length=16)),
                ('revoked_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'booking_revoked_ticket', 'app': 'models', 'unique_together': (('booking_id', 'version'),), 'pk_attr': 'id', 'table_description': 'A ticket that no longer admits its holder: published to offline desks until its slot is over.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Slot',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=80)),
                ('hall_code', fields.CharField(max_length=32)),
                ('section', fields.CharField(max_length=20)),
                ('day', fields.DateField()),
                ('starts_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('capacity', fields.IntField()),
                ('booked', fields.IntField(default=0)),
            ],
            options={'table': 'booking_slot', 'app': 'models', 'indexes': [Index(fields=['hall_code', 'section', 'day'])], 'pk_attr': 'id', 'table_description': 'Seats of one time slot of a hall section. `booked <= capacity` is kept by conditional updates.'},
            bases=['Model'],
        ),
    ]
