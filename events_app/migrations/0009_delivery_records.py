"""The log's delivery records: cursors, calls and issues replace the per-event delivery columns and attempts.

Every event that was not delivered yet becomes a delivery issue carrying its line
(pending, failed with its attempts and next retry, or dead), so the retry worker
sends it; the relay's cursor starts past every existing event. Stop the old
delivery workers before migrating: the attempts history is dropped with its table.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

import events_app.models


BATCH = 1000


def open_issues_for_undelivered(apps, schema_editor):
    """Turn each event not yet delivered into a delivery issue, and start the relay past every event."""
    Event = apps.get_model("events_app", "Event")
    DeliveryIssue = apps.get_model("events_app", "DeliveryIssue")
    DeliveryCursor = apps.get_model("events_app", "DeliveryCursor")
    now = timezone.now()
    last_pk = 0
    waiting = Event.objects.exclude(delivery_state="delivered").order_by("pk")
    while True:
        batch = list(
            waiting.filter(pk__gt=last_pk).values(
                "pk", "game_id", "received_at", "payload", "delivery_state", "attempts", "next_attempt_at", "last_error"
            )[:BATCH]
        )
        if not batch:
            break
        last_pk = batch[-1]["pk"]
        DeliveryIssue.objects.bulk_create(
            [
                DeliveryIssue(
                    event_id=row["pk"],
                    game_id=row["game_id"],
                    received_at=row["received_at"],
                    payload=row["payload"],
                    state=row["delivery_state"],
                    attempts=row["attempts"],
                    next_attempt_at=row["next_attempt_at"] or (None if row["delivery_state"] == "dead" else now),
                    last_error=row["last_error"],
                    opened_at=now,
                )
                for row in batch
            ]
        )
    last_event = Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    last_txid = 0
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text::bigint")
            last_txid = cursor.fetchone()[0]
    DeliveryCursor.objects.create(shard=0, last_txid=last_txid, last_event=last_event, moved_at=now)


def restore_delivery_states(apps, schema_editor):
    """Going back: events with an issue take its state; the rest count as delivered."""
    Event = apps.get_model("events_app", "Event")
    DeliveryIssue = apps.get_model("events_app", "DeliveryIssue")
    for issue in DeliveryIssue.objects.exclude(state="delivered").iterator():
        Event.objects.filter(pk=issue.event_id).update(
            delivery_state=issue.state,
            attempts=issue.attempts,
            next_attempt_at=issue.next_attempt_at,
            last_error=issue.last_error,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("events_app", "0008_linked_identities"),
    ]

    operations = [
        migrations.CreateModel(
            name="DeliveryCall",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("called_at", models.DateTimeField()),
                ("emitted_at", models.DateTimeField()),
                ("destination", models.CharField(max_length=32)),
                ("sender", models.CharField(max_length=16)),
                ("shard", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("first_txid", models.BigIntegerField(blank=True, null=True)),
                ("first_event", models.BigIntegerField(blank=True, null=True)),
                ("last_txid", models.BigIntegerField(blank=True, null=True)),
                ("last_event", models.BigIntegerField(blank=True, null=True)),
                ("events", models.PositiveIntegerField()),
                ("failed_events", models.PositiveIntegerField(default=0)),
                ("records", models.PositiveIntegerField()),
                ("bytes", models.PositiveBigIntegerField()),
                (
                    "outcome",
                    models.CharField(
                        choices=[("delivered", "Delivered"), ("partial", "Partly failed"), ("failed", "Failed")],
                        max_length=16,
                    ),
                ),
                ("error", models.TextField(blank=True)),
            ],
            options={
                "ordering": ["-called_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="DeliveryCursor",
            fields=[
                ("shard", models.PositiveSmallIntegerField(primary_key=True, serialize=False)),
                ("last_txid", models.BigIntegerField(default=0)),
                ("last_event", models.BigIntegerField(default=0)),
                ("moved_at", models.DateTimeField(blank=True, null=True)),
                ("holder", models.UUIDField(blank=True, editable=False, null=True)),
                ("held_until", models.DateTimeField(blank=True, editable=False, null=True)),
            ],
            options={
                "ordering": ["shard"],
            },
        ),
        migrations.CreateModel(
            name="DeliveryIssue",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("received_at", models.DateTimeField()),
                ("payload", models.JSONField()),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("pending", "Pending (resent)"),
                            ("failed", "Failed (will retry)"),
                            ("dead", "Dead (gave up)"),
                            ("delivered", "Delivered"),
                        ],
                        max_length=16,
                    ),
                ),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("next_attempt_at", models.DateTimeField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True)),
                ("opened_at", models.DateTimeField()),
                ("resent_at", models.DateTimeField(blank=True, null=True)),
                ("delivered_at", models.DateTimeField(blank=True, null=True)),
                ("claim_token", models.UUIDField(blank=True, editable=False, null=True)),
                ("claimed_until", models.DateTimeField(blank=True, editable=False, null=True)),
            ],
            options={
                "ordering": ["-opened_at", "-id"],
            },
        ),
        migrations.AddIndex(
            model_name="deliverycall",
            index=models.Index(fields=["shard", "last_txid", "last_event"], name="call_shard_last_idx"),
        ),
        migrations.AddIndex(
            model_name="deliverycall",
            index=models.Index(fields=["called_at"], name="call_called_idx"),
        ),
        migrations.AddConstraint(
            model_name="deliverycall",
            constraint=models.CheckConstraint(
                condition=models.Q(("outcome__in", ["delivered", "partial", "failed"])), name="call_outcome_valid"
            ),
        ),
        migrations.AddField(
            model_name="deliveryissue",
            name="delivered_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="events_app.deliverycall",
            ),
        ),
        migrations.AddField(
            model_name="deliveryissue",
            name="event",
            field=models.OneToOneField(
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="issue",
                to="events_app.event",
            ),
        ),
        migrations.AddField(
            model_name="deliveryissue",
            name="game",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="delivery_issues", to="events_app.game"
            ),
        ),
        migrations.AddIndex(
            model_name="deliveryissue",
            index=models.Index(
                condition=models.Q(("state__in", ("pending", "failed"))),
                fields=["next_attempt_at"],
                name="issue_due_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="deliveryissue",
            index=models.Index(fields=["state", "received_at"], name="issue_state_received_idx"),
        ),
        migrations.AddIndex(
            model_name="deliveryissue",
            index=models.Index(fields=["game", "state"], name="issue_game_state_idx"),
        ),
        migrations.AddConstraint(
            model_name="deliveryissue",
            constraint=models.CheckConstraint(
                condition=models.Q(("state__in", ["pending", "failed", "dead", "delivered"])), name="issue_state_valid"
            ),
        ),
        migrations.AddField(
            model_name="event",
            name="shard",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        # Existing rows get the migration's transaction id: behind the cursor it starts at.
        migrations.AddField(
            model_name="event",
            name="txid",
            field=events_app.models.TransactionIdField(
                db_default=events_app.models.CurrentTransactionId(), editable=False
            ),
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(fields=["shard", "txid", "id"], name="event_relay_idx"),
        ),
        migrations.RunPython(open_issues_for_undelivered, restore_delivery_states),
        migrations.RemoveConstraint(
            model_name="event",
            name="event_delivery_state_valid",
        ),
        migrations.RemoveIndex(
            model_name="event",
            name="event_due_idx",
        ),
        migrations.RemoveIndex(
            model_name="event",
            name="event_state_received_idx",
        ),
        migrations.RemoveIndex(
            model_name="event",
            name="event_game_state_received_idx",
        ),
        migrations.RemoveField(
            model_name="event",
            name="attempts",
        ),
        migrations.RemoveField(
            model_name="event",
            name="claim_token",
        ),
        migrations.RemoveField(
            model_name="event",
            name="claimed_until",
        ),
        migrations.RemoveField(
            model_name="event",
            name="delivered_at",
        ),
        migrations.RemoveField(
            model_name="event",
            name="delivery_state",
        ),
        migrations.RemoveField(
            model_name="event",
            name="emitted_at",
        ),
        migrations.RemoveField(
            model_name="event",
            name="last_error",
        ),
        migrations.RemoveField(
            model_name="event",
            name="next_attempt_at",
        ),
        migrations.DeleteModel(
            name="DeliveryAttempt",
        ),
    ]
