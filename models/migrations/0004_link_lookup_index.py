"""Links looked up by local record (kind, local_id) across integrations.

The unique (integration, kind, local_id) index cannot serve a lookup without the
integration: the GraphQL psaLinks loader, local edits and integration deletion all ask "which
links does this record have?". Without this index SQLite scans the whole table per page.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0003_link_origin")]

    initial = False

    operations = [
        ops.RunSQL(
            ['CREATE INDEX IF NOT EXISTS "idx_record_link_local" ON "record_link" (kind, local_id)'],
            reverse_sql=['DROP INDEX IF EXISTS "idx_record_link_local"'],
        )
    ]
