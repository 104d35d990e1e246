"""DRF serializers that enforce the contract's event rules and shape the validated event."""

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import cached_property

import orjson
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.fields import SkipField, empty, get_error_detail
from rest_framework.settings import api_settings

from . import conf
from .codes import COUNTRY_CODES, CURRENCY_CODES
from .currency import minor_units_error
from .timeutil import parse_rfc3339

EVENT_TYPES = ("install", "purchase")
PLATFORMS = ("ios", "android", "windows", "macos", "linux", "web", "playstation", "xbox", "switch", "other")


def json_size(value: object) -> int:
    """Return the size in bytes of `value` encoded as compact JSON.

    Raises ValidationError for values the record could not carry (integers beyond
    64 bits, for one: the HTTP parser reads those as floats, but other callers may not).
    """
    try:
        return len(orjson.dumps(value))
    except TypeError as exc:
        raise serializers.ValidationError(f"Cannot be encoded as JSON: {exc}.", code="invalid") from exc


def decimal_string(value: Decimal) -> str:
    """Return a plain decimal string without exponent or trailing zeros ("4.99", "1200")."""
    return format(value.normalize(), "f")


_FORBIDDEN_CHARACTERS = re.compile("[\x00\ud800-\udfff]")


class StrictCharField(serializers.Field):
    """A JSON string (numbers and booleans are refused) with length limits, kept exactly as sent.

    Does the checks of DRF's CharField and its validators (length, no NUL, no lone
    surrogates, which PostgreSQL cannot store) in one pass with one regular expression.
    """

    default_error_messages = {
        "invalid": "Not a valid string.",
        "blank": "This field may not be blank.",
        "max_length": "Ensure this field has no more than {max_length} characters.",
        "forbidden_character": "Contains a character that is not allowed (NUL or a lone surrogate).",
    }

    def __init__(self, *, max_length: int, allow_blank: bool = False, **kwargs):
        self.max_length = max_length
        self.allow_blank = allow_blank
        super().__init__(**kwargs)

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if not data and not self.allow_blank:
            self.fail("blank")
        if len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        if _FORBIDDEN_CHARACTERS.search(data):
            self.fail("forbidden_character")
        return data

    def to_representation(self, value: str) -> str:
        return value


class StrictUUIDField(serializers.UUIDField):
    """A UUID given as a JSON string; DRF alone would also turn 42 or true into a UUID."""

    def to_internal_value(self, data: object):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class RFC3339DateTimeField(serializers.Field):
    """A timestamp that must be RFC 3339 with an offset; naive times are refused."""

    default_error_messages = {
        "invalid": "Expected an RFC 3339 timestamp with an offset, e.g. 2026-01-31T12:00:00Z.",
        "out_of_range": "Timestamp is out of range once converted to UTC.",
    }

    def to_internal_value(self, data: object) -> datetime:
        if not isinstance(data, str):
            self.fail("invalid")
        parsed = parse_rfc3339(data)
        if parsed is None:
            self.fail("invalid")
        try:
            parsed.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            self.fail("out_of_range")
        return parsed

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class JSONObjectField(serializers.Field):
    """A free-form JSON object, optionally capped in encoded size."""

    default_error_messages = {
        "not_object": "Expected a JSON object.",
        "too_large": "Is {size} bytes as JSON; at most {max_size} are allowed.",
    }

    def __init__(self, *, max_bytes: int | None = None, **kwargs):
        self.max_bytes = max_bytes
        super().__init__(**kwargs)

    def to_internal_value(self, data: object) -> dict:
        if not isinstance(data, dict):
            self.fail("not_object")
        if self.max_bytes is not None:
            size = json_size(data)
            if size > self.max_bytes:
                self.fail("too_large", size=size, max_size=self.max_bytes)
        return data

    def to_representation(self, value: dict) -> dict:
        return value


class CodeField(StrictCharField):
    """An upper-case code from a fixed set, accepted in any case."""

    default_error_messages = {"unknown_code": "{value!r} is not a valid {standard} code."}

    def __init__(self, *, codes: frozenset[str], standard: str, **kwargs):
        self.codes = codes
        self.standard = standard
        super().__init__(max_length=8, **kwargs)

    def to_internal_value(self, data: object) -> str:
        value = super().to_internal_value(data).upper()
        if value not in self.codes:
            self.fail("unknown_code", value=data, standard=self.standard)
        return value


class PositiveDecimalField(serializers.DecimalField):
    """A decimal strictly above zero, from a string or a JSON number, never via float maths."""

    default_error_messages = {"not_positive": "Must be greater than 0."}

    def to_internal_value(self, data: object) -> Decimal:
        if isinstance(data, bool):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if value <= 0:
            self.fail("not_positive")
        return value


class FlatSerializer(serializers.Serializer):
    """A Serializer of flat fields with DRF's validation semantics, minus its per-object bookkeeping.

    For every object DRF rebuilds the writable field list, looks up `validate_<name>`
    methods, resolves dotted sources and gathers read-only defaults for serializer
    validators. At thousands of events a second that bookkeeping cost more than the
    checks themselves, so it is done once per serializer instance here.
    """

    @cached_property
    def _validation_plan(self) -> list:
        plan = []
        for name, field in self.fields.items():
            if field.read_only:
                continue
            assert field.source == name, f"{type(self).__name__}.{name}: FlatSerializer needs flat sources"
            plan.append((name, field, getattr(self, f"validate_{name}", None)))
        return plan

    def to_internal_value(self, data: object) -> dict:
        validated, errors = self.validate_fields(data)
        if errors:
            raise serializers.ValidationError(errors)
        return validated

    def validate_fields(self, data: object) -> tuple[dict, dict]:
        """Return the valid fields' values and the invalid fields' errors; raise if `data` is no object."""
        if not isinstance(data, Mapping):
            message = self.error_messages["invalid"].format(datatype=type(data).__name__)
            raise serializers.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: [message]}, code="invalid")
        validated = {}
        errors = {}
        for name, field, validate_method in self._validation_plan:
            try:
                value = field.run_validation(data.get(name, empty))
                if validate_method is not None:
                    value = validate_method(value)
            except serializers.ValidationError as exc:
                errors[name] = exc.detail
            except DjangoValidationError as exc:
                errors[name] = get_error_detail(exc)
            except SkipField:
                pass
            else:
                validated[name] = value
        return validated, errors

    def run_validators(self, value: dict) -> None:
        if self.validators:
            super().run_validators(value)


class KeepUnknownKeysSerializer(FlatSerializer):
    """A serializer of an open object: declared keys are validated, others are kept as given."""

    def to_internal_value(self, data: object) -> dict:
        validated = super().to_internal_value(data)
        extra = {key: value for key, value in data.items() if key not in self.fields}
        return {**extra, **validated} if extra else validated


class InstallPropertiesSerializer(KeepUnknownKeysSerializer):
    """Properties of an `install` event; all optional, unknown keys kept."""

    store = StrictCharField(max_length=64, required=False)
    campaign = StrictCharField(max_length=256, required=False)
    country = CodeField(codes=COUNTRY_CODES, standard="ISO 3166-1 alpha-2", required=False)
    device_model = StrictCharField(max_length=128, required=False)
    os_version = StrictCharField(max_length=64, required=False)


class PurchasePropertiesSerializer(KeepUnknownKeysSerializer):
    """Properties of a `purchase` event; unknown keys kept."""

    transaction_id = StrictCharField(max_length=256)
    product_id = StrictCharField(max_length=256)
    price = PositiveDecimalField(max_digits=18, decimal_places=6, coerce_to_string=True)
    currency = CodeField(codes=CURRENCY_CODES, standard="ISO 4217")
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000, default=1)
    store = StrictCharField(max_length=64, required=False)

    def validate(self, attrs: dict) -> dict:
        """Refuse a price with more decimals than its currency's ISO 4217 minor units (4.999 EUR, 1.5 JPY)."""
        error = minor_units_error(attrs["price"], attrs["currency"])
        if error:
            raise serializers.ValidationError({"price": [error]}, code="too_many_decimals")
        return attrs


PROPERTIES_SERIALIZERS = {
    "install": InstallPropertiesSerializer,
    "purchase": PurchasePropertiesSerializer,
}


class EventSerializer(FlatSerializer):
    """One event as a client sends it; validated data is ready to store and forward.

    Needs `received_at` (server time) in its context and, for batches, the batch's
    `sent_at`, to derive the skew-corrected `derived_at`.
    """

    event_id = StrictUUIDField(required=False, help_text="Idempotency key; made by the server if absent.")
    event_type = serializers.ChoiceField(choices=EVENT_TYPES)
    player_id = StrictCharField(max_length=128)
    occurred_at = RFC3339DateTimeField(help_text="RFC 3339 with an offset, by the client's clock.")
    sent_at = RFC3339DateTimeField(required=False, allow_null=True)
    platform = serializers.ChoiceField(choices=PLATFORMS, required=False, allow_null=True)
    app_version = StrictCharField(max_length=64, required=False, allow_null=True)
    session_id = StrictCharField(max_length=128, required=False, allow_null=True)
    properties = JSONObjectField(required=False, help_text="Per event type; unknown keys are kept.")
    context = JSONObjectField(required=False, allow_null=True, max_bytes=conf.MAX_CONTEXT_BYTES)

    default_error_messages = {
        "too_large": "Event is {size} bytes as JSON; at most {max_size} are allowed.",
        "too_far_ahead": (
            "Lies {hours:.1f} h after the server's clock once corrected by sent_at; at most 24 h is allowed."
        ),
        "out_of_range": "Out of range once corrected by sent_at.",
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Built once per serializer, not per event: DRF copies declared fields lazily.
        self._properties_serializers = {
            event_type: serializer_class() for event_type, serializer_class in PROPERTIES_SERIALIZERS.items()
        }

    def run_validation(self, data: object = empty) -> dict:
        # DRF answers a null with a bare list of errors; an event's errors are always
        # keyed, so a client can read every answer the same way.
        if not isinstance(data, Mapping):
            message = self.error_messages["invalid"].format(datatype=type(data).__name__)
            raise serializers.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: [message]}, code="invalid")
        return super().run_validation(data)

    def to_internal_value(self, data: object) -> dict:
        # Check the size before any field work so an oversized event costs little.
        if isinstance(data, dict):
            try:
                size = json_size(data)
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: exc.detail}) from exc
            if size > conf.MAX_EVENT_BYTES:
                message = self.error_messages["too_large"].format(size=size, max_size=conf.MAX_EVENT_BYTES)
                raise serializers.ValidationError({"non_field_errors": [message]}, code="too_large")
        attrs, errors = self.validate_fields(data)
        # Properties and clock checks run even when other fields failed, so one 400
        # names every bad field.
        if "event_type" in attrs and "properties" not in errors:
            properties_serializer = self._properties_serializers[attrs["event_type"]]
            try:
                attrs["properties"] = properties_serializer.run_validation(attrs.get("properties") or {})
            except serializers.ValidationError as exc:
                errors["properties"] = exc.detail
        if "occurred_at" in attrs and "sent_at" not in errors:
            self._derive_time(attrs, errors)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def _derive_time(self, attrs: dict, errors: dict) -> None:
        """Set sent_at (the event's, else the batch's), received_at and the skew-corrected derived_at."""
        received_at: datetime = self.context["received_at"]
        sent_at = attrs.get("sent_at") or self.context.get("batch_sent_at")
        occurred_at: datetime = attrs["occurred_at"]
        try:
            derived_at = received_at - (sent_at - occurred_at) if sent_at else occurred_at
            ahead = (derived_at - received_at).total_seconds()
            derived_at.astimezone(UTC)
        except OverflowError:
            errors["occurred_at"] = [self.error_messages["out_of_range"]]
            return
        if ahead > conf.MAX_CLOCK_SKEW_SECONDS:
            errors["occurred_at"] = [self.error_messages["too_far_ahead"].format(hours=ahead / 3600)]
            return
        attrs["sent_at"] = sent_at
        attrs["received_at"] = received_at
        attrs["derived_at"] = derived_at


class BatchSerializer(serializers.Serializer):
    """The envelope of POST /v1/events/batch; each event is validated on its own afterwards."""

    sent_at = RFC3339DateTimeField(required=False, allow_null=True)
    # No child field: every entry, null included, is judged on its own by EventSerializer,
    # so one bad entry never costs the batch its valid events.
    events = serializers.ListField(min_length=1, max_length=conf.MAX_BATCH_EVENTS, allow_empty=False)


class EventResultSerializer(serializers.Serializer):
    """What the API answers for one event (documentation of the response)."""

    index = serializers.IntegerField(required=False, help_text="Position in the batch (batch only).")
    event_id = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=("accepted", "duplicate", "rejected"))
    errors = serializers.DictField(required=False, help_text="Per field, as DRF gives them (rejected only).")


class BatchResultSerializer(serializers.Serializer):
    """The answer to POST /v1/events/batch (documentation of the response)."""

    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = EventResultSerializer(many=True)
