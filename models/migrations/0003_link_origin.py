from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_composite_indexes')]

    initial = False

    operations = [
        ops.AddField(
            model_name='RecordLink',
            name='created_by_sync',
            field=fields.BooleanField(default=False),
        ),
    ]
