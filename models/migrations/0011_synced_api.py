"""Which API an integration's links were last read through, and the run's check of them.

``integration.synced_api`` ("REST", "SOAP") lets a run that opens another API than the last
one check every link first (a ConnectWise integration moving from SOAP to REST);
``sync_run.transition`` holds that check's counts.
"""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0010_run_pace")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Integration",
            name="synced_api",
            field=fields.CharField(null=True, max_length=8),
        ),
        ops.AddField(
            model_name="SyncRun",
            name="transition",
            field=fields.JSONField(null=True),
        ),
    ]
