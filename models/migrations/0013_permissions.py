"""What the PSA's security role denies an integration, by area (``sync.permissions``): its own
column, apart from the poll bookmarks."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0012_invitations")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Integration",
            name="permissions",
            field=fields.JSONField(default=dict),
        ),
    ]
