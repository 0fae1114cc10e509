"""Tracking shared by every worker: per-run claims, the last poll's time, and a row per
tracker loop. The old single tracker's periodic sweep goes (each worker tracks)."""

from django.db import migrations, models
from django.utils import timezone


def remove_sweep(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="tracker sweep").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0009_history_indexes"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="claimed_by",
            field=models.CharField(blank=True, max_length=120),
        ),
        migrations.AddField(
            model_name="run",
            name="claimed_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="run",
            name="last_polled_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="Tracker",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("holder", models.CharField(max_length=120, unique=True)),
                ("started_at", models.DateTimeField(default=timezone.now)),
                ("seen_at", models.DateTimeField(default=timezone.now)),
                ("stopped_at", models.DateTimeField(blank=True, null=True)),
                ("steps", models.PositiveBigIntegerField(default=0)),
            ],
            options={"ordering": ["-started_at"]},
        ),
        migrations.RunPython(remove_sweep, migrations.RunPython.noop),
    ]
