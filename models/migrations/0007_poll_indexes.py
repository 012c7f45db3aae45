"""Indexes for polls: their cost must follow the changes, not the number of links.

The relations pass looks for links with pending relations (``refs_pending``) per kind, and
the sites step of a poll for the organizations synced since the run started; without these,
both walk every link of the integration (about 0.4 s per kind at 200,000 links).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

INDEXES = [
    ("idx_record_link_pending", "record_link", "integration_id, kind, refs_pending, id"),
    ("idx_record_link_synced_at", "record_link", "integration_id, kind, synced_at"),
]


class Migration(migrations.Migration):
    dependencies = [("models", "0006_webhooks")]

    initial = False

    operations = [
        ops.RunSQL(
            [f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ({columns})' for name, table, columns in INDEXES],
            reverse_sql=[f'DROP INDEX IF EXISTS "{name}"' for name, _, _ in INDEXES],
        )
    ]
