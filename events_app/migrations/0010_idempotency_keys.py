"""Idempotency keys: event and purchase transaction ids move from the log's unique constraints to key tables.

The keys of the events already stored are written first (event ids received within
the dedup window, purchase transaction ids within EVENTS_PURCHASE_KEY_DAYS), so a
repeat of any of them stays a duplicate across the upgrade; then the log's unique
constraints go, which lets PostgreSQL partition it.
"""

from datetime import timedelta

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

from events_app import conf
from events_app import idempotency as keys

BATCH = 1000


def write_keys_of_stored_events(apps, schema_editor):
    """Give the events already stored their keys: those within the window, and the purchases within their days."""
    Event = apps.get_model("events_app", "Event")
    EventKey = apps.get_model("events_app", "EventKey")
    PurchaseKey = apps.get_model("events_app", "PurchaseKey")
    now = timezone.now()
    window_start = now - timedelta(hours=conf.dedup_window_hours())
    recent = Event.objects.filter(received_at__gte=window_start).order_by("pk")
    last_pk = 0
    while True:
        batch = list(
            recent.filter(pk__gt=last_pk).values("pk", "game_id", "event_id", "event_type", "player_id", "received_at")[
                :BATCH
            ]
        )
        if not batch:
            break
        last_pk = batch[-1]["pk"]
        EventKey.objects.bulk_create(
            [
                EventKey(
                    bucket=keys.buckets_at(row["received_at"].timestamp())[0],
                    game_id=row["game_id"],
                    event_id=row["event_id"],
                    type_hash=keys.fingerprint(row["event_type"]),
                    player_hash=keys.fingerprint(row["player_id"]),
                )
                for row in batch
            ],
            ignore_conflicts=True,
        )
    purchases = Event.objects.filter(
        transaction_id__isnull=False, received_at__gte=now - timedelta(days=conf.purchase_key_days())
    ).order_by("pk")
    last_pk = 0
    while True:
        batch = list(
            purchases.filter(pk__gt=last_pk).values(
                "pk", "game_id", "event_id", "transaction_id", "player_id", "payload", "received_at"
            )[:BATCH]
        )
        if not batch:
            break
        last_pk = batch[-1]["pk"]
        PurchaseKey.objects.bulk_create(
            [PurchaseKey(**keys.purchase_key_values(row, game_id=row["game_id"])) for row in batch],
            ignore_conflicts=True,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("events_app", "0009_delivery_records"),
    ]

    operations = [
        migrations.CreateModel(
            name="EventKey",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "bucket", "game", "event_id", blank=True, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("bucket", models.IntegerField()),
                (
                    "game",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="events_app.game",
                    ),
                ),
                ("event_id", models.UUIDField()),
                ("type_hash", models.BigIntegerField()),
                ("player_hash", models.BigIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name="PurchaseKey",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "game", "transaction_id", blank=True, editable=False, primary_key=True, serialize=False
                    ),
                ),
                (
                    "game",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="events_app.game",
                    ),
                ),
                ("transaction_id", models.CharField(max_length=256)),
                ("event_id", models.UUIDField()),
                ("player_id", models.CharField(max_length=128)),
                ("product_id", models.TextField(blank=True, null=True)),
                ("price", models.DecimalField(blank=True, decimal_places=6, max_digits=30, null=True)),
                ("currency", models.CharField(blank=True, max_length=3)),
                ("received_at", models.DateTimeField()),
            ],
        ),
        migrations.AddIndex(
            model_name="purchasekey",
            index=models.Index(fields=["received_at"], name="purchase_key_received_idx"),
        ),
        migrations.RunPython(write_keys_of_stored_events, migrations.RunPython.noop),
        migrations.RemoveConstraint(
            model_name="event",
            name="event_unique_id_per_game",
        ),
        migrations.RemoveConstraint(
            model_name="event",
            name="event_unique_transaction_per_game",
        ),
    ]
