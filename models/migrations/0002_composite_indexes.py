"""Composite indexes over foreign-key columns.

Tortoise's CreateModel adds a foreign-key column after its table when the referenced table
comes later in the migration, but creates Meta.indexes at once, so these are created here,
once every column exists. IF NOT EXISTS keeps the statements idempotent on both backends.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

INDEXES = [
    ("idx_organization_account_match", "organization", "account_id, match_key"),
    ("idx_organization_account_name", "organization", "account_id, name"),
    ("idx_location_account_match", "location", "account_id, match_key"),
    ("idx_location_organization", "location", "organization_id"),
    ("idx_contact_account_match", "contact", "account_id, match_key"),
    ("idx_contact_organization", "contact", "organization_id"),
    ("idx_configuration_account_match", "configuration", "account_id, match_key"),
    ("idx_configuration_account_name", "configuration", "account_id, name"),
    ("idx_configuration_organization", "configuration", "organization_id"),
    ("idx_record_link_parent", "record_link", "integration_id, kind, psa_parent_id"),
    ("idx_record_link_state", "record_link", "integration_id, kind, state"),
    ("idx_sync_run_integration", "sync_run", "integration_id, queued_at"),
    ("idx_sync_run_issue_code", "sync_run_issue", "run_id, code"),
]


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    initial = False

    operations = [
        ops.RunSQL(
            [f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ({columns})' for name, table, columns in INDEXES],
            reverse_sql=[f'DROP INDEX IF EXISTS "{name}"' for name, _, _ in INDEXES],
        )
    ]
