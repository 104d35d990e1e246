"""Database models: games, API keys, the event log and its delivery records, erased players, senders' heartbeats."""

import hashlib
import secrets
from datetime import datetime

from django.db import models
from django.db.models import Q
from django.utils import timezone

API_KEY_PREFIX = "pet_"
API_KEY_VISIBLE_CHARS = 12


class UnknownEventPolicy(models.TextChoices):
    """What happens to an event of a custom type the game has registered no schema for."""

    REJECT = "reject", "Reject (400 naming event_type)"
    ACCEPT = "accept", "Accept without a schema"


class Game(models.Model):
    """A game whose clients send events; every API key and event belongs to one."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    unknown_events = models.CharField(
        "custom types without a schema",
        max_length=8,
        choices=UnknownEventPolicy.choices,
        default=UnknownEventPolicy.REJECT,
        help_text="Events of a custom type with no registered schema are rejected, or accepted unchecked.",
    )

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(unknown_events__in=UnknownEventPolicy.values), name="game_unknown_events_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class ApiKey(models.Model):
    """A client key of one game, stored as a SHA-256 hash; only its prefix stays readable."""

    game = models.ForeignKey(Game, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=API_KEY_VISIBLE_CHARS, db_index=True, editable=False)
    # Keys are 256 random bits, so a fast unsalted hash is enough: nothing to brute-force.
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.game.slug})"

    @staticmethod
    def generate() -> str:
        """Return a new random plaintext key."""
        return API_KEY_PREFIX + secrets.token_urlsafe(32)

    @staticmethod
    def hash(plaintext: str) -> str:
        """Return the stored form of a plaintext key."""
        return hashlib.sha256(plaintext.encode()).hexdigest()

    @property
    def is_active(self) -> bool:
        return self.works_at(timezone.now())

    def works_at(self, moment: datetime) -> bool:
        """Return True if the key is accepted at `moment`: never revoked, or revoked from a later time (a grace)."""
        return self.revoked_at is None or self.revoked_at > moment

    @staticmethod
    def working_at(moment: datetime) -> Q:
        """Return the filter of the keys accepted at `moment` (the rule of works_at, for queries)."""
        return Q(revoked_at__isnull=True) | Q(revoked_at__gt=moment)


class DeliveryState(models.TextChoices):
    """An event's delivery state, derived from the relay's cursor and the event's delivery issue (if any)."""

    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (will retry)"
    DEAD = "dead", "Dead (gave up)"


class CurrentTransactionId(models.Func):
    """The inserting transaction's id on PostgreSQL (`pg_current_xact_id()`); 0 elsewhere, where ids commit in order."""

    output_field = models.BigIntegerField()

    def as_sql(self, compiler, connection, **extra_context):
        return "0", []

    def as_postgresql(self, compiler, connection, **extra_context):
        return "pg_current_xact_id()", []


class TransactionIdField(models.BigIntegerField):
    """A transaction id: `xid8` on PostgreSQL, read as an int; a plain integer elsewhere (always 0)."""

    def db_type(self, connection):
        return "xid8" if connection.vendor == "postgresql" else super().db_type(connection)

    def from_db_value(self, value, expression, connection):
        return None if value is None else int(value)


class Event(models.Model):
    """One accepted event in the audit log: written once, never updated for its delivery.

    Delivery progress lives beside it: the relay's DeliveryCursor (everything of a
    shard up to it went out), DeliveryCall rows (one per destination call) and a
    DeliveryIssue row for the rare event that failed, was given up on or was resent.
    `txid` is the inserting transaction on PostgreSQL, which the relay reads past in
    commit order (events_app.logstore). On PostgreSQL the table is partitioned by UTC
    day of received_at (migration 0011), its primary key (id, received_at).
    """

    # No index of its own: (game, id) and (game, player_id) both lead with the game.
    game = models.ForeignKey(Game, on_delete=models.PROTECT, related_name="events", db_index=False)
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=64)
    player_id = models.CharField(max_length=128)
    platform = models.CharField(max_length=16, blank=True)
    transaction_id = models.CharField(max_length=256, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    revenue = models.DecimalField(max_digits=30, decimal_places=6, null=True, blank=True)
    # Revenue in EVENTS_BASE_CURRENCY at the rate of fx_date; null while no rate is known.
    revenue_base = models.DecimalField(max_digits=30, decimal_places=6, null=True, blank=True)
    base_currency = models.CharField(max_length=3, blank=True)
    fx_rate = models.DecimalField(max_digits=30, decimal_places=12, null=True, blank=True)
    fx_date = models.DateField(null=True, blank=True)
    occurred_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField()
    derived_at = models.DateTimeField()
    # The Firehose line without emitted_at, which is stamped at each send.
    payload = models.JSONField()
    # Which relay sends it: a hash of (game, player) modulo EVENTS_RELAY_SHARDS, fixed at insert.
    shard = models.PositiveSmallIntegerField(default=0)
    # The inserting transaction, set by the database: the relay reads in (txid, id) order (events_app.logstore).
    txid = TransactionIdField(db_default=CurrentTransactionId(), editable=False)

    class Meta:
        ordering = ["-received_at", "-id"]
        permissions = [("resend_event", "Can resend events to Firehose")]
        # No unique constraint: event and transaction ids are unique within their windows
        # through EventKey and PurchaseKey (events_app.idempotency).
        indexes = [
            # The relay's read past its cursor, in commit order.
            models.Index(fields=["shard", "txid", "id"], name="event_relay_idx"),
            # A game's events newest first (the admin's list of one game, arrival order).
            models.Index(fields=["game", "id"], name="event_game_id_idx"),
            # A player's events: erasure, the admin's player search.
            models.Index(fields=["game", "player_id"], name="event_game_player_idx"),
            # Purchases still waiting for an exchange rate (reconvert's scan).
            models.Index(
                fields=["derived_at"],
                condition=Q(revenue__isnull=False, revenue_base__isnull=True),
                name="event_missing_fx_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class EventKey(models.Model):
    """An event_id a game sent, remembered for the idempotency window (EVENTS_DEDUP_WINDOW_HOURS).

    `bucket` is the window-long stretch of time the id first arrived in; it leads the
    key, so a repeat is looked up in its own and the previous bucket only, and whole
    buckets are dropped once too old to matter. The repeat's type and player are
    compared through 8-byte hashes, to keep the row narrow (events_app.idempotency).
    """

    pk = models.CompositePrimaryKey("bucket", "game", "event_id")
    bucket = models.IntegerField()
    game = models.ForeignKey(Game, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+")
    event_id = models.UUIDField()
    type_hash = models.BigIntegerField()
    player_hash = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.event_id} (bucket {self.bucket})"


class PurchaseKey(models.Model):
    """A purchase's transaction_id in a game, kept EVENTS_PURCHASE_KEY_DAYS: a repeat is a duplicate, or a conflict.

    Holds what makes a receipt the same purchase (who bought what, at which price and
    currency), so a repeat that differs is refused rather than answered as a duplicate.
    """

    pk = models.CompositePrimaryKey("game", "transaction_id")
    game = models.ForeignKey(Game, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+")
    transaction_id = models.CharField(max_length=256)
    event_id = models.UUIDField()
    player_id = models.CharField(max_length=128)
    product_id = models.TextField(null=True, blank=True)
    price = models.DecimalField(max_digits=30, decimal_places=6, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["received_at"], name="purchase_key_received_idx")]

    def __str__(self) -> str:
        return f"{self.transaction_id} ({self.event_id})"


class DeliveryCursor(models.Model):
    """How far one relay shard has delivered the log: every event of the shard up to here went out.

    `last_txid` is the inserting transaction of the last event passed (PostgreSQL,
    where ids commit out of order; 0 on SQLite, where they commit in order). On
    SQLite the relay holds its shard by a lease on this row; PostgreSQL uses an
    advisory lock instead.
    """

    shard = models.PositiveSmallIntegerField(primary_key=True)
    last_txid = models.BigIntegerField(default=0)
    last_event = models.BigIntegerField(default=0)
    moved_at = models.DateTimeField(null=True, blank=True)
    holder = models.UUIDField(null=True, blank=True, editable=False)
    held_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["shard"]

    def __str__(self) -> str:
        return f"shard {self.shard} at event {self.last_event}"


class EventHour(models.Model):
    """Events the relays sent, counted per hour of arrival, game, type, platform and currency.

    The dashboard's and the admin's figures, never a COUNT over the log: each relay
    batch adds its events here in the transaction that records it (one upsert per
    group), and reconvert adds the base-currency revenue it fills in. Counted by
    received_at, so an event counts from when the relay passes it (normally seconds).
    An hour holds one row per group whatever the volume: a month of them is read in
    milliseconds (per minute, a few hundred events a minute made about a row each).
    """

    hour = models.DateTimeField()
    game = models.ForeignKey(Game, on_delete=models.CASCADE, related_name="+", db_index=False)
    event_type = models.CharField(max_length=64)
    platform = models.CharField(max_length=16, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    events = models.PositiveBigIntegerField(default=0)
    # Sum of revenue_base of the events with a rate (purchases, ad impressions); 0 for the others.
    revenue_base = models.DecimalField(max_digits=30, decimal_places=6, default=0)

    class Meta:
        constraints = [
            # Also the index every dashboard range reads: by hour first.
            models.UniqueConstraint(
                fields=["hour", "game", "event_type", "platform", "currency"], name="event_hour_unique"
            ),
        ]
        indexes = [models.Index(fields=["game", "hour"], name="event_hour_game_idx")]

    def __str__(self) -> str:
        return f"{self.events} {self.event_type} at {self.hour:%Y-%m-%d %H:00}"


class CallOutcome(models.TextChoices):
    DELIVERED = "delivered", "Delivered"
    PARTIAL = "partial", "Partly failed"
    FAILED = "failed", "Failed"


class DeliveryCall(models.Model):
    """One call to the destination: when, where, how much, and how it went.

    A relay call also records the span of the log it sent (first and last event, in
    the relay's order): an event of that shard inside it was delivered by this call
    unless it has a DeliveryIssue. A retry worker's call delivers issue rows, which
    point at it.
    """

    called_at = models.DateTimeField()
    # The emitted_at stamped on every line of the call.
    emitted_at = models.DateTimeField()
    destination = models.CharField(max_length=32)
    sender = models.CharField(max_length=16)
    shard = models.PositiveSmallIntegerField(null=True, blank=True)
    first_txid = models.BigIntegerField(null=True, blank=True)
    first_event = models.BigIntegerField(null=True, blank=True)
    last_txid = models.BigIntegerField(null=True, blank=True)
    last_event = models.BigIntegerField(null=True, blank=True)
    events = models.PositiveIntegerField()
    failed_events = models.PositiveIntegerField(default=0)
    records = models.PositiveIntegerField()
    bytes = models.PositiveBigIntegerField()
    outcome = models.CharField(max_length=16, choices=CallOutcome.choices)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-called_at", "-id"]
        indexes = [
            # Which call delivered an event: the relay call of its shard whose span holds it.
            models.Index(fields=["shard", "last_txid", "last_event"], name="call_shard_last_idx"),
            models.Index(fields=["called_at"], name="call_called_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(outcome__in=CallOutcome.values), name="call_outcome_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.destination} call at {self.called_at:%Y-%m-%d %H:%M:%S} ({self.events} events, {self.outcome})"


class IssueState(models.TextChoices):
    PENDING = "pending", "Pending (resent)"
    FAILED = "failed", "Failed (will retry)"
    DEAD = "dead", "Dead (gave up)"
    DELIVERED = "delivered", "Delivered"


# States the retry worker picks issue rows up from.
DUE_STATES = (IssueState.PENDING, IssueState.FAILED)


class DeliveryIssue(models.Model):
    """An event whose delivery took more than the relay's one pass: it failed, was given up on, or was resent.

    Carries its own copy of the line, so the retry worker needs nothing else and the
    log's retention can never take an undelivered line with it. Rare by design: a
    healthy pipeline writes none.
    """

    # No database constraint: the log may be partitioned, where (id) alone is not unique.
    event = models.OneToOneField(Event, on_delete=models.DO_NOTHING, db_constraint=False, related_name="issue")
    game = models.ForeignKey(Game, on_delete=models.CASCADE, related_name="delivery_issues")
    received_at = models.DateTimeField()
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=IssueState.choices)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    opened_at = models.DateTimeField()
    resent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    delivered_by = models.ForeignKey(DeliveryCall, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Who is sending this event right now, and until when: a lease, so a sender that
    # dies mid-send only delays the event until another one claims it.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [
            # The retry worker's queue scan: only rows still to send are in this index.
            models.Index(fields=["next_attempt_at"], condition=Q(state__in=DUE_STATES), name="issue_due_idx"),
            models.Index(fields=["state", "received_at"], name="issue_state_received_idx"),
            models.Index(fields=["game", "state"], name="issue_game_state_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=IssueState.values), name="issue_state_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.state} issue of event #{self.event_id}"


class EventSchema(models.Model):
    """One version of the JSON Schema (draft 2020-12) a game's custom event type's `properties` must match.

    Versions count up from 1 per (game, type); events are checked against the latest.
    """

    game = models.ForeignKey(Game, on_delete=models.CASCADE, related_name="event_schemas")
    event_type = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    schema = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["game", "event_type", "-version"]
        verbose_name = "custom event schema"
        constraints = [
            models.UniqueConstraint(fields=["game", "event_type", "version"], name="event_schema_unique_version"),
            models.CheckConstraint(condition=Q(version__gte=1), name="event_schema_version_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} v{self.version}"


class RejectedEvent(models.Model):
    """A recent event (or request) the API refused, kept so operators can see why a game's events fail.

    Bounded by age and count, and per request (see events_app.ingest.rejections).
    """

    game = models.ForeignKey(Game, on_delete=models.CASCADE, null=True, blank=True, related_name="rejections")
    received_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(default=400)
    errors = models.JSONField()
    body = models.TextField(blank=True, help_text="The rejected event as received, truncated.")
    # The body's player_id when it had a string one: what erasing a player finds its rejections by.
    player_id = models.CharField(max_length=128, blank=True, default="")
    not_kept = models.PositiveIntegerField(
        default=0, help_text="More events the same request had refused: counted here, not kept (per-request cap)."
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["game", "received_at"], name="rejection_game_received_idx"),
            models.Index(fields=["game", "player_id"], name="rejection_game_player_idx"),
        ]

    def __str__(self) -> str:
        return f"rejected at {self.received_at:%Y-%m-%d %H:%M:%S}"


class ExchangeRate(models.Model):
    """How many units of `currency` one unit of the base currency bought on `date`."""

    date = models.DateField()
    currency = models.CharField(max_length=3)
    base_currency = models.CharField(max_length=3)
    rate = models.DecimalField(max_digits=30, decimal_places=12)
    source = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-date", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["base_currency", "currency", "date"], name="exchange_rate_unique_day"),
            models.CheckConstraint(condition=Q(rate__gt=0), name="exchange_rate_positive"),
        ]

    def __str__(self) -> str:
        return f"1 {self.base_currency} = {self.rate} {self.currency} on {self.date}"


class DuplicateTally(models.Model):
    """How many duplicates one request answered; written only by requests that had some.

    Duplicates are not stored as events, yet operators want to see how many clients
    retry; one small row per such request (none for the usual request) keeps the
    count exact without a hot counter row every request would have to lock.
    """

    game = models.ForeignKey(Game, on_delete=models.CASCADE, related_name="duplicate_tallies")
    received_at = models.DateTimeField()
    duplicates = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["received_at", "game"], name="duplicate_tally_received_idx")]

    def __str__(self) -> str:
        return f"{self.duplicates} duplicates at {self.received_at:%Y-%m-%d %H:%M:%S}"


class SuppressedPlayer(models.Model):
    """A player of a game whose data was erased: their later events are answered `suppressed`, never stored.

    Written and lifted through events_app.privacy.erasure (the erase_player command, the admin).
    """

    game = models.ForeignKey(Game, on_delete=models.CASCADE, related_name="suppressed_players")
    player_id = models.CharField(max_length=128)
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=150, blank=True, help_text="Who erased the player (user or command).")
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "suppressed player"
        permissions = [("erase_player", "Can erase a player's events and suppress their later ones")]
        constraints = [
            # Also the index ingest's one lookup per request reads: (game, player_id IN ...).
            models.UniqueConstraint(fields=["game", "player_id"], name="suppressed_player_unique_per_game"),
        ]

    def __str__(self) -> str:
        return f"{self.player_id} ({self.game.slug})"


class LinkKind(models.TextChoices):
    ANONYMOUS = "anonymous", "anonymousId sent with the userId"
    ALIAS = "alias", "joined by an alias call"


class LinkedIdentity(models.Model):
    """Another id the tracker saw stand for a player of a game: erasing the player erases it too.

    Recorded from Segment messages: an `anonymousId` sent together with a `userId`, and
    the `previousId` an `alias` joined to a `userId` (events_app.privacy.identities).
    """

    game = models.ForeignKey(Game, on_delete=models.CASCADE, related_name="linked_identities")
    player_id = models.CharField(max_length=128)
    linked_id = models.CharField(max_length=128)
    kind = models.CharField(max_length=16, choices=LinkKind.choices)
    first_seen_at = models.DateTimeField()

    class Meta:
        verbose_name = "linked identity"
        verbose_name_plural = "linked identities"
        constraints = [
            models.UniqueConstraint(fields=["game", "player_id", "linked_id"], name="linked_identity_unique"),
        ]
        # Erasure follows links both ways: from a player to its ids, from an id to its players.
        indexes = [models.Index(fields=["game", "linked_id"], name="linked_identity_by_linked_id")]

    def __str__(self) -> str:
        return f"{self.linked_id} -> {self.player_id} ({self.game.slug})"


class Heartbeat(models.Model):
    """A kind of sender's latest signs of life (`worker`: `deliver_events`): written every few seconds, one row each.

    Every process of a kind writes the same row, so it says when any of them was last
    seen and last delivered; events_app.delivery.heartbeat writes it, the dashboard reads it.
    """

    sender = models.CharField(max_length=32, unique=True)
    last_seen_at = models.DateTimeField()
    last_delivery_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.sender} last seen at {self.last_seen_at:%Y-%m-%d %H:%M:%S}"


class KpiDay(models.Model):
    """A game's KPI figures of one UTC day (of derived_at), kept apart from the log: they outlive its retention.

    Counters only, each grown by the relay's batches (events_app.kpi), by reconvert
    (revenue that arrives later) and shrunk by erasure; the report divides them.
    `retained_d1/7/30` count this day's new players seen again on day +1/+7/+30.
    Purged after EVENTS_KPI_RETENTION_DAYS.
    """

    game = models.ForeignKey(Game, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    dau = models.BigIntegerField(default=0)
    new_players = models.BigIntegerField(default=0)
    sessions = models.BigIntegerField(default=0)
    session_ends = models.BigIntegerField(default=0)  # session_end events with a duration_ms
    session_ms = models.BigIntegerField(default=0)  # the sum of their duration_ms
    purchases = models.BigIntegerField(default=0)
    paying_players = models.BigIntegerField(default=0)
    revenue_base = models.DecimalField(max_digits=30, decimal_places=6, default=0)
    ad_revenue_base = models.DecimalField(max_digits=30, decimal_places=6, default=0)
    retained_d1 = models.BigIntegerField(default=0)
    retained_d7 = models.BigIntegerField(default=0)
    retained_d30 = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "KPI day"
        constraints = [
            # Also the index every report reads: one game's range of days.
            models.UniqueConstraint(fields=["game", "day"], name="kpi_day_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.day} ({self.dau} active)"


class KpiPlayer(models.Model):
    """One player of a game as the KPIs know them: first day, and the days they were active and paid, as bitmaps.

    Bit i of `active` (little-endian bytes) is the day `first_day` + i; `paying` the
    same for days with a purchase (empty for the many who never pay). A few dozen
    bytes a player for 800 days, whatever the events' volume: what makes daily active
    and paying players distinct and the D1/D7/D30 cohorts exact (events_app.kpi.activity).
    Deleted when the player is erased, or once `last_day` is older than EVENTS_KPI_RETENTION_DAYS.
    """

    game = models.ForeignKey(Game, on_delete=models.CASCADE, related_name="+", db_index=False)
    player_id = models.CharField(max_length=128)
    first_day = models.DateField()
    last_day = models.DateField()
    active = models.BinaryField()
    paying = models.BinaryField(default=b"")

    class Meta:
        verbose_name = "KPI player"
        constraints = [models.UniqueConstraint(fields=["game", "player_id"], name="kpi_player_unique")]
        indexes = [models.Index(fields=["last_day"], name="kpi_player_last_day_idx")]

    def __str__(self) -> str:
        return f"{self.player_id} since {self.first_day}"
