"""Idempotency keys: an event_id is a duplicate within the dedup window, a purchase's transaction_id for longer.

The log itself has no unique constraint (on PostgreSQL it is partitioned by day,
where a unique index would have to hold the day too). Uniqueness lives in two
narrow key tables, claimed in the transaction that stores the events:

- `EventKey (bucket, game, event_id)`: time is cut into buckets one window long
  (EVENTS_DEDUP_WINDOW_HOURS, counted from the Unix epoch); a key is stored in the
  bucket of its first arrival and a repeat is looked up in its own bucket and the
  one before, so a key is remembered for at least one window and at most two.
  Close to a bucket's end (the last BOUNDARY_GRACE_SECONDS) a new key is stored in
  the next bucket as well: two copies arriving at the same moment on either side of
  the boundary then meet on the same primary key, and the database lets one in.
  That holds as long as no ingest transaction lasts longer than the grace, which
  the database enforces (INGEST_STATEMENT_TIMEOUT and the idle-in-transaction
  timeout, set for each ingest transaction), and the bucket is read from the
  database's clock, one for every server.
- `PurchaseKey (game, transaction_id)`: kept EVENTS_PURCHASE_KEY_DAYS whatever the
  window, with what makes a receipt the same purchase.

A repeat is the same event (a duplicate, answered with the stored id) or another
one claiming its id (a conflict: which fields differ). Claiming inserts with
`ON CONFLICT DO NOTHING ... RETURNING`: a copy racing another waits for it to commit
and then finds its key, so two copies are never both stored.
"""

import functools
import hashlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.db.models import Q

from events_app import conf
from events_app.db import erasure_lock_call
from events_app.models import EventKey, PurchaseKey

# Keys written in two buckets during this much of a bucket's end: more than the
# longest an ingest transaction may last (below) plus the database's own clock steps.
BOUNDARY_GRACE_SECONDS = 300
# PostgreSQL bounds each ingest transaction: at most ~8 statements of at most this
# long, with at most this long idle between them, well under the grace.
INGEST_STATEMENT_TIMEOUT = "15s"
INGEST_IDLE_TIMEOUT = "15s"


@dataclass(frozen=True)
class Repeat:
    """A stored event an incoming one repeats: its event_id, by which key, and which fields of the repeat differ."""

    event_id: uuid.UUID
    key: str  # "event_id" or "transaction_id"
    differing: tuple[str, ...] = ()


@dataclass
class Claimed:
    """The outcome of claiming the keys of some rows: positions of the rows that are new, and the repeats."""

    new: list[int] = field(default_factory=list)
    repeats: dict[int, Repeat] = field(default_factory=dict)


def begin(*, game_id: int) -> float:
    """Start an ingest transaction for `game_id`; return its time (epoch seconds) from the database's clock.

    Call first in the transaction. On PostgreSQL one statement sets the timeouts
    for this transaction only, takes the game's erasure lock (shared: see
    events_app.db.hold_erasure_lock, so what the transaction reads next about
    erased players cannot change before it commits) and reads the database's
    clock, one for every server. Should an erasure hold the lock, a second
    statement waits for it, within the timeout just set, and reads the clock after.
    SQLite queues every writer, so its own clock will do.
    """
    if connection.vendor != "postgresql":
        return time.time()
    clock = "EXTRACT(EPOCH FROM clock_timestamp())::float8"
    with connection.cursor() as cursor:
        lock, lock_params = erasure_lock_call(game_id, exclusive=False, wait=False)
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, true), "
            f"set_config('idle_in_transaction_session_timeout', %s, true), {lock}, {clock}",
            [INGEST_STATEMENT_TIMEOUT, INGEST_IDLE_TIMEOUT, *lock_params],
        )
        _, _, locked, moment = cursor.fetchone()
        if not locked:
            lock, lock_params = erasure_lock_call(game_id, exclusive=False)
            cursor.execute(f"SELECT {clock} FROM (SELECT {lock}) AS locked", lock_params)
            (moment,) = cursor.fetchone()
        return moment


def window_seconds() -> int:
    """Return the idempotency window in seconds (EVENTS_DEDUP_WINDOW_HOURS)."""
    return max(1, int(conf.dedup_window_hours() * 3600))


def buckets_at(moment: float) -> tuple[int, list[int]]:
    """Return the bucket at `moment` and the buckets a new key is written to (the next one too near the end)."""
    width = window_seconds()
    bucket = int(moment // width)
    grace = min(BOUNDARY_GRACE_SECONDS, width // 2)
    writes = [bucket, bucket + 1] if moment >= (bucket + 1) * width - grace else [bucket]
    return bucket, writes


def fingerprint(value: str) -> int:
    """Return a stable signed 64-bit hash of `value`: what a key compares a repeat's type and player by."""
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8, person=b"events-key").digest()
    return int.from_bytes(digest, "big", signed=True)


def claim(rows: Sequence[dict], *, game_id: int, moment: float) -> Claimed:
    """Claim the event and purchase keys of `rows` (distinct ids) for `game_id`; return the new rows and the repeats.

    Call inside the write transaction that then stores the new rows. A row whose
    event key is new but whose purchase key is taken is a repeat, and its event key
    is released again.
    """
    claimed = Claimed()
    if not rows:
        return claimed
    bucket, writes = buckets_at(moment)
    hashes = {index: (fingerprint(row["event_type"]), fingerprint(row["player_id"])) for index, row in enumerate(rows)}
    # One statement in the common case: keys stored in none of the buckets looked at
    # are inserted, and only the ids that did not go into every bucket written (repeats,
    # or keys another request stored since the look) are read back.
    looked_at = [bucket - 1, *writes]
    inserted = _insert_new_event_keys(
        [
            (writes_bucket, row["event_id"], *hashes[index])
            for index, row in enumerate(rows)
            for writes_bucket in writes
        ],
        game_id=game_id,
        buckets=looked_at,
    )
    late = [row["event_id"] for row in rows if len(inserted.get(row["event_id"], ())) < len(writes)]
    known: dict[uuid.UUID, tuple[int, int]] = {}
    if late:
        for key_bucket, event_id, type_hash, player_hash in _stored_event_keys(
            game_id=game_id, event_ids=late, buckets=looked_at
        ):
            if key_bucket not in inserted.get(event_id, ()):  # another request's key, not the one just written
                known[event_id] = (type_hash, player_hash)
    for index, row in enumerate(rows):
        stored = known.get(row["event_id"])
        if stored is None:
            continue
        differing = tuple(
            name
            for name, mine, theirs in zip(("event_type", "player_id"), hashes[index], stored, strict=True)
            if mine != theirs
        )
        claimed.repeats[index] = Repeat(event_id=row["event_id"], key="event_id", differing=differing)
    # A repeat that still got into one bucket (another request took the other meanwhile)
    # gives it back: the key there is the first copy's.
    partial = [
        (key_bucket, rows[index]["event_id"])
        for index in claimed.repeats
        for key_bucket in inserted.get(rows[index]["event_id"], ())
    ]
    if partial:
        _release_keys(game_id=game_id, keys=partial)
    winners = [index for index in range(len(rows)) if index not in claimed.repeats]
    purchases = [index for index in winners if rows[index].get("transaction_id") is not None]
    if purchases:
        taken = _claim_purchase_keys([rows[index] for index in purchases], game_id=game_id)
        losers = []
        for index in purchases:
            stored = taken.get(rows[index]["transaction_id"])
            if stored is not None:
                claimed.repeats[index] = stored_repeat(rows[index], stored)
                losers.append(rows[index]["event_id"])
        if losers:
            _release_event_keys(game_id=game_id, event_ids=losers, buckets=writes)
    claimed.new = [index for index in winners if index not in claimed.repeats]
    return claimed


def _uuid_param(value: uuid.UUID):
    return value if connection.vendor == "postgresql" else value.hex


def _uuid_of(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _stored_event_keys(*, game_id: int, event_ids: list, buckets: list[int]) -> list[tuple]:
    """Return (bucket, event_id, type hash, player hash) of the ids' keys stored in `buckets` (on the primary key)."""
    table = connection.ops.quote_name(EventKey._meta.db_table)
    found: list[tuple] = []
    if connection.vendor == "postgresql":
        # Arrays as parameters: one short statement, parsed and planned once per process.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT bucket, event_id, type_hash, player_hash FROM {table} "
                "WHERE bucket = ANY(%s::int[]) AND game_id = %s AND event_id = ANY(%s::uuid[])",
                [buckets, game_id, list(event_ids)],
            )
            return [(bucket, _uuid_of(event_id), *hashes) for bucket, event_id, *hashes in cursor]
    with connection.cursor() as cursor:
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start : start + 500]
            bucket_marks, id_marks = ", ".join(["%s"] * len(buckets)), ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT bucket, event_id, type_hash, player_hash FROM {table} "
                f"WHERE bucket IN ({bucket_marks}) AND game_id = %s AND event_id IN ({id_marks})",
                [*buckets, game_id, *(_uuid_param(event_id) for event_id in chunk)],
            )
            found += [(bucket, _uuid_of(event_id), *hashes) for bucket, event_id, *hashes in cursor.fetchall()]
    return found


def _insert_new_event_keys(keys: list[tuple], *, game_id: int, buckets: list[int]) -> dict[uuid.UUID, set[int]]:
    """Insert (bucket, event_id, type hash, player hash) keys whose id is stored in none of `buckets`.

    Return the buckets each id was inserted in. An id stored already is inserted
    nowhere; one another request stores at the same moment meets it on the primary
    key (ON CONFLICT waits for that request, then skips), so it may go into some of
    its buckets and not the others.
    """
    table = connection.ops.quote_name(EventKey._meta.db_table)
    columns = f"INSERT INTO {table} (bucket, game_id, event_id, type_hash, player_hash) "
    statements = []
    if connection.vendor == "postgresql":
        key_buckets, event_ids, type_hashes, player_hashes = (list(column) for column in zip(*keys, strict=True))
        statements.append(
            (
                columns + "SELECT incoming.bucket, %s, incoming.event_id, incoming.type_hash, incoming.player_hash "
                "FROM unnest(%s::int[], %s::uuid[], %s::bigint[], %s::bigint[]) "
                "AS incoming (bucket, event_id, type_hash, player_hash) "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS stored WHERE stored.bucket = ANY(%s::int[]) "
                "AND stored.game_id = %s AND stored.event_id = incoming.event_id) "
                "ON CONFLICT DO NOTHING RETURNING bucket, event_id",
                [game_id, key_buckets, event_ids, type_hashes, player_hashes, buckets, game_id],
            )
        )
    else:
        if connection.vendor != "sqlite":  # another database: look first, then insert
            stored = {
                event_id
                for _, event_id, *_ in _stored_event_keys(
                    game_id=game_id, event_ids=list({key[1] for key in keys}), buckets=buckets
                )
            }
            keys = [key for key in keys if key[1] not in stored]
        bucket_marks = ", ".join(["%s"] * len(buckets))
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            params = []
            for key_bucket, event_id, type_hash, player_hash in chunk:
                params += [key_bucket, game_id, _uuid_param(event_id), type_hash, player_hash]
            values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(chunk))
            if connection.vendor == "sqlite":  # which names a VALUES list's columns column1, column2...
                sql = (
                    columns + f"SELECT * FROM (VALUES {values}) AS incoming "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS stored WHERE stored.bucket IN ({bucket_marks}) "
                    "AND stored.game_id = %s AND stored.event_id = incoming.column3)"
                )
                params += [*buckets, game_id]
            else:
                sql = columns + f"VALUES {values}"
            statements.append((sql + " ON CONFLICT DO NOTHING RETURNING bucket, event_id", params))
    inserted: dict[uuid.UUID, set[int]] = {}
    with connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)
            for key_bucket, event_id in cursor.fetchall():
                inserted.setdefault(_uuid_of(event_id), set()).add(key_bucket)
    return inserted


def _release_event_keys(*, game_id: int, event_ids: list[uuid.UUID], buckets: list[int]) -> None:
    EventKey.objects.filter(bucket__in=buckets, game_id=game_id, event_id__in=event_ids).delete()


def _release_keys(*, game_id: int, keys: list[tuple[int, uuid.UUID]]) -> None:
    """Delete the (bucket, event_id) keys this transaction inserted for ids that turned out to be repeats."""
    condition = Q()
    for key_bucket, event_id in keys:
        condition |= Q(bucket=key_bucket, event_id=event_id)
    EventKey.objects.filter(condition, game_id=game_id).delete()


def purchase_identity(row: dict) -> dict:
    """Return what makes a receipt the same purchase: who bought what, at which price and currency."""
    payload = row["payload"]
    price = payload.get("price")
    return {
        "player_id": row["player_id"],
        "product_id": _text((payload.get("properties") or {}).get("product_id")),
        "price": Decimal(price) if price is not None else None,
        "currency": payload.get("currency") or "",
    }


def _text(value) -> str | None:
    # As the key stores it: a product id sent as a number compares equal to itself stored as text.
    return None if value is None else str(value)


def purchase_key_values(row: dict, *, game_id: int) -> dict:
    """Return the column values of a purchase's key (the migration that wrote the first keys uses them too)."""
    return {
        "game_id": game_id,
        "transaction_id": row["transaction_id"],
        "event_id": row["event_id"],
        **purchase_identity(row),
        "received_at": row["received_at"],
    }


def stored_repeat(row: dict, stored: PurchaseKey) -> Repeat:
    """Return the Repeat of a purchase whose transaction_id `stored` holds already."""
    mine = purchase_identity(row)
    theirs = {
        "player_id": stored.player_id,
        "product_id": stored.product_id,
        "price": stored.price,
        "currency": stored.currency,
    }
    differing = tuple(name for name in mine if mine[name] != theirs[name])
    return Repeat(event_id=stored.event_id, key="transaction_id", differing=differing)


def _prepare_for(model_field):
    """Return how a purchase key's value goes to the database: as is where the driver takes it, else as the ORM would.

    The ORM's per-value preparation cost more than the insert; a request's rows share one
    received_at, prepared once.
    """
    if model_field.get_internal_type() in ("CharField", "TextField", "ForeignKey"):
        return lambda value: value
    if model_field.get_internal_type() == "UUIDField":
        return _uuid_param
    return functools.lru_cache(maxsize=8)(lambda value: model_field.get_db_prep_save(value, connection))


def _claim_purchase_keys(rows: list[dict], *, game_id: int) -> dict[str, PurchaseKey]:
    """Insert the rows' purchase keys; return the keys stored already (by transaction_id) for those that lost."""
    table = connection.ops.quote_name(PurchaseKey._meta.db_table)
    columns = ["game_id", "transaction_id", "event_id", "player_id", "product_id", "price", "currency", "received_at"]
    prepare = [_prepare_for(PurchaseKey._meta.get_field(name)) for name in columns]
    params = []
    for row in rows:
        values = purchase_key_values(row, game_id=game_id)
        params += [convert(values[name]) for name, convert in zip(columns, prepare, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
            + ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(rows))
            + " ON CONFLICT DO NOTHING RETURNING transaction_id",
            params,
        )
        won = {transaction_id for (transaction_id,) in cursor.fetchall()}
    lost = [row["transaction_id"] for row in rows if row["transaction_id"] not in won]
    if not lost:
        return {}
    return {key.transaction_id: key for key in PurchaseKey.objects.filter(game_id=game_id, transaction_id__in=lost)}
