"""Two-way sync: the outbox, conflicts, field history; link push state; direction settings.

SQLite cannot alter a column in place: Tortoise rebuilds the table for each AlterField and the
rebuilt table has none of its indexes, so the last operation creates them again (IF NOT
EXISTS: PostgreSQL altered in place and still has them).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.enums import AssetKind, ChangeSource, ConflictOutcome, LinkState, OutboxOperation, OutboxStatus, PushState, RunKind, RunTrigger
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0004_link_lookup_index')]

    initial = False

    operations = [
        ops.CreateModel(
            name='FieldChange',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='field_changes', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='ORGANIZATION: organization\nLOCATION: location\nCONTACT: contact\nCONFIGURATION: configuration', enum_type=AssetKind, max_length=16)),
                ('local_id', fields.UUIDField()),
                ('field', fields.CharField(max_length=64)),
                ('old_value', fields.TextField(null=True, unique=False)),
                ('new_value', fields.TextField(null=True, unique=False)),
                ('source', fields.CharEnumField(description='USER: USER\nPSA: PSA\nPUSH: PUSH\nCONFLICT: CONFLICT\nDIRECTORY: DIRECTORY', enum_type=ChangeSource, max_length=16)),
                ('actor', fields.CharField(null=True, max_length=254)),
                ('integration_id', fields.UUIDField(null=True)),
                ('changed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'field_change', 'app': 'models', 'indexes': [Index(fields=['kind', 'local_id', 'changed_at'])], 'pk_attr': 'id', 'table_description': 'One change of a synced field: old and new value, and who or what set it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OutboxEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('integration', fields.ForeignKeyField('models.Integration', source_field='integration_id', db_constraint=True, to_field='id', related_name='outbox', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='ORGANIZATION: organization\nLOCATION: location\nCONTACT: contact\nCONFIGURATION: configuration', enum_type=AssetKind, max_length=16)),
                ('local_id', fields.UUIDField()),
                ('operation', fields.CharEnumField(description='CREATE: CREATE\nUPDATE: UPDATE\nDELETE: DELETE', enum_type=OutboxOperation, max_length=8)),
                ('status', fields.CharEnumField(default=OutboxStatus.PENDING, description='PENDING: PENDING\nFAILED: FAILED', enum_type=OutboxStatus, max_length=8)),
                ('fields_changed', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('payload', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('created_by', fields.CharField(null=True, max_length=254)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'outbox_entry', 'app': 'models', 'indexes': [Index(fields=['status', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': "A local change waiting to be pushed to one PSA, written in the edit's transaction."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SyncConflict',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('integration', fields.ForeignKeyField('models.Integration', source_field='integration_id', db_constraint=True, to_field='id', related_name='conflicts', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='ORGANIZATION: organization\nLOCATION: location\nCONTACT: contact\nCONFIGURATION: configuration', enum_type=AssetKind, max_length=16)),
                ('local_id', fields.UUIDField()),
                ('psa_id', fields.BigIntField(null=True)),
                ('field', fields.CharField(max_length=64)),
                ('base', fields.TextField(null=True, unique=False)),
                ('local_value', fields.TextField(null=True, unique=False)),
                ('psa_value', fields.TextField(null=True, unique=False)),
                ('policy', fields.CharField(max_length=32)),
                ('outcome', fields.CharEnumField(description='PSA: PSA\nLOCAL: LOCAL\nOPEN: OPEN\nRESOLVED: RESOLVED', enum_type=ConflictOutcome, max_length=8)),
                ('resolution', fields.CharField(null=True, max_length=8)),
                ('resolved_value', fields.TextField(null=True, unique=False)),
                ('resolved_by', fields.CharField(null=True, max_length=254)),
                ('resolved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'sync_conflict', 'app': 'models', 'indexes': [Index(fields=['integration_id', 'outcome']), Index(fields=['kind', 'local_id'])], 'pk_attr': 'id', 'table_description': 'A field changed on both sides since the last sync, and how it was settled.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Integration',
            name='contact_email_type',
            field=fields.CharField(null=True, max_length=100),
        ),
        ops.AddField(
            model_name='Integration',
            name='contact_phone_type',
            field=fields.CharField(null=True, max_length=100),
        ),
        ops.AddField(
            model_name='Integration',
            name='directions',
            field=fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Integration',
            name='propagate_deletes',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='Integration',
            name='push_not_before',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Integration',
            name='push_lease_owner',
            field=fields.CharField(null=True, max_length=100),
        ),
        ops.AddField(
            model_name='Integration',
            name='push_lease_expires_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Integration',
            name='push_rate_per_minute',
            field=fields.IntField(default=600),
        ),
        ops.AlterField(
            model_name='RecordLink',
            name='psa_id',
            field=fields.BigIntField(null=True),
        ),
        ops.AlterField(
            model_name='RecordLink',
            name='state',
            field=fields.CharEnumField(default=LinkState.SYNCED, description='SYNCED: SYNCED\nORPHANED: ORPHANED\nDISCONNECTED: DISCONNECTED\nSYNC_DISABLED: SYNC_DISABLED\nERROR: ERROR\nNOT_PUSHED: NOT_PUSHED\nPENDING_PUSH: PENDING_PUSH', enum_type=LinkState, max_length=16),
        ),
        ops.AddField(
            model_name='RecordLink',
            name='push_state',
            field=fields.CharEnumField(default=PushState.NONE, description='NONE: NONE\nPENDING: PENDING\nFAILED: FAILED', enum_type=PushState, max_length=8),
        ),
        ops.AlterField(
            model_name='SyncRun',
            name='kind',
            field=fields.CharEnumField(default=RunKind.FULL, description='FULL: FULL\nINCREMENTAL: INCREMENTAL\nMANUAL: MANUAL\nPUSH_ALL: PUSH_ALL', enum_type=RunKind, max_length=16),
        ),
        ops.AlterField(
            model_name='SyncRun',
            name='trigger',
            field=fields.CharEnumField(default=RunTrigger.SCHEDULE, description='SETUP: setup\nSCHEDULE: schedule\nMANUAL: manual\nSETTINGS: settings\nCLI: cli\nPUSH_ALL: push_all', enum_type=RunTrigger, max_length=16),
        ),
        ops.RunSQL(
            [
                'CREATE UNIQUE INDEX IF NOT EXISTS "uid_record_link_integra_acc30c" ON "record_link" (integration_id, kind, local_id)',
                'CREATE UNIQUE INDEX IF NOT EXISTS "uid_record_link_integra_b833d9" ON "record_link" (integration_id, kind, psa_id)',
                'CREATE INDEX IF NOT EXISTS "idx_record_link_local" ON "record_link" (kind, local_id)',
                'CREATE INDEX IF NOT EXISTS "idx_record_link_parent" ON "record_link" (integration_id, kind, psa_parent_id)',
                'CREATE INDEX IF NOT EXISTS "idx_record_link_state" ON "record_link" (integration_id, kind, state)',
                'CREATE INDEX IF NOT EXISTS "idx_sync_run_integration" ON "sync_run" (integration_id, queued_at)',
                'CREATE INDEX IF NOT EXISTS "idx_sync_run_status_84991d" ON "sync_run" (status, priority, queued_at)',
                'CREATE INDEX IF NOT EXISTS "idx_outbox_integration" ON "outbox_entry" (integration_id, status, id)',
                'CREATE INDEX IF NOT EXISTS "idx_outbox_record" ON "outbox_entry" (kind, local_id)',
                'CREATE INDEX IF NOT EXISTS "idx_conflict_link" ON "sync_conflict" (integration_id, kind, local_id, field)',
            ],
            reverse_sql=[],
        ),
    ]
