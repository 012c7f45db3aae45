"""A content digest on each link, and the seconds a run waited for a PSA's call budget.

``record_link.psa_hash`` lets a pull skip records whose content it already holds, for PSA lists
that cannot filter by change time (Pulseway hardware assets); ``sync_run.budget_wait_seconds``
lets a run say when the PSA's call budget, not the work, set its pace.
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0007_poll_indexes")]

    initial = False

    operations = [
        ops.AddField(
            model_name="RecordLink",
            name="psa_hash",
            field=fields.CharField(null=True, max_length=32),
        ),
        ops.AddField(
            model_name="SyncRun",
            name="budget_wait_seconds",
            field=fields.FloatField(default=0),
        ),
    ]
