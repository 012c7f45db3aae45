"""A run's time and budget waits over all its attempts.

``sync_run.active_seconds`` adds up the time each attempt of a run spent running (a paused,
retried or taken-over run has several), and ``sync_run.budget_waits`` its budget waits per
endpoint, so a run says how much of its whole time the PSA's call budget took.
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0009_sending")]

    initial = False

    operations = [
        ops.AddField(
            model_name="SyncRun",
            name="budget_waits",
            field=fields.JSONField(default=dict),
        ),
        ops.AddField(
            model_name="SyncRun",
            name="active_seconds",
            field=fields.FloatField(default=0),
        ),
    ]
