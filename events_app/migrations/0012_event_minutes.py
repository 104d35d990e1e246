"""Per-minute counts of the events sent (EventMinute), filled for the events the relays have passed already."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Count, Sum
from django.db.models.functions import TruncMinute

from events_app import logstore


def count_past_events(apps, schema_editor):
    """Count the events every relay has passed into their minutes; the relay counts the rest as it sends them."""
    Event = apps.get_model("events_app", "Event")
    DeliveryCursor = apps.get_model("events_app", "DeliveryCursor")
    EventMinute = apps.get_model("events_app", "EventMinute")
    passed = Event.objects.exclude(logstore.not_relayed(list(DeliveryCursor.objects.all())))
    groups = (
        passed.annotate(minute=TruncMinute("received_at"))
        .values("minute", "game_id", "event_type", "platform", "currency")
        .annotate(events=Count("pk"), revenue=Sum("revenue_base"))
        .order_by()
    )
    EventMinute.objects.bulk_create(
        [
            EventMinute(
                minute=group["minute"],
                game_id=group["game_id"],
                event_type=group["event_type"],
                platform=group["platform"],
                currency=group["currency"],
                events=group["events"],
                revenue_base=group["revenue"] or 0,
            )
            for group in groups.iterator()
        ],
        batch_size=1000,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("events_app", "0011_partition_the_log"),
    ]

    operations = [
        migrations.CreateModel(
            name="EventMinute",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("minute", models.DateTimeField()),
                ("event_type", models.CharField(max_length=64)),
                ("platform", models.CharField(blank=True, max_length=16)),
                ("currency", models.CharField(blank=True, max_length=3)),
                ("events", models.PositiveBigIntegerField(default=0)),
                ("revenue_base", models.DecimalField(decimal_places=6, default=0, max_digits=30)),
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
                "indexes": [models.Index(fields=["game", "minute"], name="event_minute_game_idx")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("minute", "game", "event_type", "platform", "currency"), name="event_minute_unique"
                    )
                ],
            },
        ),
        migrations.RunPython(count_past_events, migrations.RunPython.noop),
    ]
