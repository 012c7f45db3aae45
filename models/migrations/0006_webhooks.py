"""Webhooks: the inbox of deliveries, PSA-side registrations, polling bookmarks and schedule.

The SyncRun.kind AlterField rebuilds sync_run on SQLite without its indexes: the last
operation creates them again (IF NOT EXISTS: PostgreSQL altered in place).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.enums import AssetKind, DeliveryStatus, RunKind, SubscriptionState
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0005_two_way')]

    initial = False

    operations = [
        ops.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('integration', fields.ForeignKeyField('models.Integration', source_field='integration_id', db_constraint=True, to_field='id', related_name='webhook_deliveries', on_delete=OnDelete.CASCADE)),
                ('dedupe_key', fields.CharField(max_length=128)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('kind', fields.CharEnumField(null=True, description='ORGANIZATION: organization\nLOCATION: location\nCONTACT: contact\nCONFIGURATION: configuration', enum_type=AssetKind, max_length=16)),
                ('psa_id', fields.BigIntField(null=True)),
                ('action', fields.CharField(max_length=16)),
                ('member', fields.CharField(null=True, max_length=254)),
                ('stamp', fields.BigIntField(null=True)),
                ('payload', fields.TextField(unique=False)),
                ('status', fields.CharEnumField(default=DeliveryStatus.PENDING, description='PENDING: PENDING\nPROCESSED: PROCESSED\nIGNORED: IGNORED\nFAILED: FAILED', enum_type=DeliveryStatus, max_length=16)),
                ('reason', fields.TextField(null=True, unique=False)),
                ('attempts', fields.IntField(default=0)),
                ('not_before', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('processed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'webhook_delivery', 'app': 'models', 'unique_together': (('integration', 'dedupe_key'),), 'indexes': [Index(fields=['integration_id', 'status', 'id']), Index(fields=['integration_id', 'received_at'])], 'pk_attr': 'id', 'table_description': 'One notification a PSA posted, and what became of it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookSubscription',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('integration', fields.ForeignKeyField('models.Integration', source_field='integration_id', db_constraint=True, to_field='id', related_name='webhook_subscriptions', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='ORGANIZATION: organization\nLOCATION: location\nCONTACT: contact\nCONFIGURATION: configuration', enum_type=AssetKind, max_length=16)),
                ('psa_id', fields.BigIntField(null=True)),
                ('url', fields.CharField(max_length=1000)),
                ('state', fields.CharEnumField(description='REGISTERED: REGISTERED\nFAILED: FAILED\nREMOVED: REMOVED', enum_type=SubscriptionState, max_length=16)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('checked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'webhook_subscription', 'app': 'models', 'unique_together': (('integration', 'kind'),), 'pk_attr': 'id', 'table_description': 'A PSA-side registration (a ConnectWise callback) psasync made for one asset kind.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Integration',
            name='bookmarks',
            field=fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Integration',
            name='inbox_lease_expires_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Integration',
            name='inbox_lease_owner',
            field=fields.CharField(null=True, max_length=100),
        ),
        ops.AddField(
            model_name='Integration',
            name='near_real_time',
            field=fields.BooleanField(default=True),
        ),
        ops.AddField(
            model_name='Integration',
            name='next_poll_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Integration',
            name='next_reconcile_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Integration',
            name='psa_member',
            field=fields.CharField(null=True, max_length=254),
        ),
        ops.AddField(
            model_name='Integration',
            name='reconcile_interval_seconds',
            field=fields.IntField(default=86400),
        ),
        ops.AddField(
            model_name='Integration',
            name='webhook_last_rejected_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Integration',
            name='webhook_rejected',
            field=fields.IntField(default=0),
        ),
        ops.AddField(
            model_name='Integration',
            name='webhooks_checked_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Integration',
            name='webhooks_due',
            field=fields.BooleanField(default=False),
        ),
        ops.AlterField(
            model_name='SyncRun',
            name='kind',
            field=fields.CharEnumField(default=RunKind.FULL, description='FULL: FULL\nINCREMENTAL: INCREMENTAL\nMANUAL: MANUAL\nPUSH_ALL: PUSH_ALL\nRECONCILE: RECONCILE', enum_type=RunKind, max_length=16),
        ),
        ops.RunSQL(
            [
                'CREATE INDEX IF NOT EXISTS "idx_sync_run_integration" ON "sync_run" (integration_id, queued_at)',
                'CREATE INDEX IF NOT EXISTS "idx_sync_run_status_84991d" ON "sync_run" (status, priority, queued_at)',
            ],
            reverse_sql=[],
        ),
    ]
