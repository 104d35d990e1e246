"""Per-hour counts of the events sent (EventHour) replace the per-minute ones (EventMinute), summed from them."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Sum
from django.db.models.functions import TruncHour


def count_hours(apps, schema_editor):
    """Sum every kept minute into its hour; the relays count per hour from now on."""
    EventMinute = apps.get_model("events_app", "EventMinute")
    EventHour = apps.get_model("events_app", "EventHour")
    groups = (
        EventMinute.objects.annotate(hour=TruncHour("minute"))
        .values("hour", "game_id", "event_type", "platform", "currency")
        .annotate(total=Sum("events"), revenue=Sum("revenue_base"))
        .order_by()
    )
    EventHour.objects.bulk_create(
        (
            EventHour(
                hour=group["hour"],
                game_id=group["game_id"],
                event_type=group["event_type"],
                platform=group["platform"],
                currency=group["currency"],
                events=group["total"],
                revenue_base=group["revenue"] or 0,
            )
            for group in groups.iterator()
        ),
        batch_size=1000,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("events_app", "0014_kpi_aggregates"),
    ]

    operations = [
        migrations.CreateModel(
            name="EventHour",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("event_type", models.CharField(max_length=64)),
                ("platform", models.CharField(blank=True, max_length=16)),
                ("currency", models.CharField(blank=True, max_length=3)),
                ("events", models.PositiveBigIntegerField(default=0)),
                ("revenue_base", models.DecimalField(decimal_places=6, default=0, max_digits=30)),
                ("hour", models.DateTimeField()),
                (
                    "game",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="events_app.game",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["game", "hour"], name="event_hour_game_idx")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("hour", "game", "event_type", "platform", "currency"), name="event_hour_unique"
                    )
                ],
            },
        ),
        migrations.RunPython(count_hours, migrations.RunPython.noop),
        migrations.DeleteModel(name="EventMinute"),
    ]
