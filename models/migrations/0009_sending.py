"""What psasync is writing to each PSA record before the answer is recorded (echoes)."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0008_content_hash")]

    initial = False

    operations = [
        ops.AddField(
            model_name="RecordLink",
            name="sending",
            field=fields.JSONField(null=True),
        ),
    ]
