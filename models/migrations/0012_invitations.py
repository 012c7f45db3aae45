"""Invitations to join an account (PSA users invited at setup), and the invite step's outcome
on the integration (``user_invites``: INVITED or SKIPPED)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from models.enums import Role
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0011_synced_api')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Invitation',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='invitations', on_delete=OnDelete.CASCADE)),
                ('integration', fields.ForeignKeyField('models.Integration', source_field='integration_id', null=True, db_constraint=True, to_field='id', related_name='invitations', on_delete=OnDelete.SET_NULL)),
                ('email', fields.CharField(max_length=254)),
                ('name', fields.CharField(default='', max_length=200)),
                ('role', fields.CharEnumField(default=Role.VIEWER, description='ADMINISTRATOR: administrator\nMANAGER: manager\nEDITOR: editor\nVIEWER: viewer', enum_type=Role, max_length=16)),
                ('psa_id', fields.BigIntField(null=True)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('invited_by', fields.ForeignKeyField('models.User', source_field='invited_by_id', null=True, db_constraint=True, to_field='id', related_name='invitations_sent', on_delete=OnDelete.SET_NULL)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', null=True, db_constraint=True, to_field='id', related_name='invitations', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('emailed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('accepted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'invitation', 'app': 'models', 'indexes': [Index(fields=['account_id', 'email'])], 'pk_attr': 'id', 'table_description': 'An invited user, pending until the token is accepted (which creates the ``User``).'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Integration',
            name='user_invites',
            field=fields.CharField(null=True, max_length=8),
        ),
    ]
