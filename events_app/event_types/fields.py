"""Custom DRF fields and the flat serializer base the event contract is built from."""

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

from events_app.event_types.timeutil import parse_rfc3339
from sdk.contract import FORBIDDEN_CHARACTERS


def json_encoded(value: object) -> bytes:
    """Return `value` encoded as compact JSON.

    Raises ValidationError for values the record could not carry (integers beyond
    64 bits, for one: the HTTP parser reads those as floats, but other callers may
    not; lone surrogates, which are not UTF-8).
    """
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise serializers.ValidationError(f"Cannot be encoded as JSON: {exc}.", code="invalid") from exc


def json_size(value: object) -> int:
    """Return the size in bytes of `value` encoded as compact JSON (see json_encoded)."""
    return len(json_encoded(value))


# A NUL inside any string of an event, as orjson escapes it: "\u0000" after an even
# number of backslashes (an odd number means the backslash itself was escaped).
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
NUL_MESSAGE = "Contains a NUL character, which cannot be stored."


def encoded_has_nul(encoded: bytes) -> bool:
    """Return True if `encoded` (orjson's output) holds a NUL character in a key or a string."""
    return b"\\u0000" in encoded and _ESCAPED_NUL.search(encoded) is not None


def nul_paths(value: object, path: tuple = ()) -> list[tuple]:
    """Return the paths (keys and list indexes) of the keys and strings inside `value` that hold a NUL."""
    found = []
    if isinstance(value, str):
        if "\x00" in value:
            found.append(path)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                found.append((*path, key))
            found.extend(nul_paths(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(nul_paths(item, (*path, index)))
    return found


def nest_error(errors: dict, path: list[str], message: str) -> None:
    """Put `message` at `path` in nested DRF-style errors ({"a": {"b": ["..."]}}; the object: non_field_errors)."""
    node = errors
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):  # a message already sits at this level: keep it beside the nested ones
            child = node[part] = {api_settings.NON_FIELD_ERRORS_KEY: child}
        node = child
    leaf = path[-1] if path else api_settings.NON_FIELD_ERRORS_KEY
    existing = node.setdefault(leaf, [])
    if isinstance(existing, dict):
        existing.setdefault(api_settings.NON_FIELD_ERRORS_KEY, []).append(message)
    elif message not in existing:
        existing.append(message)


def decimal_string(value: Decimal) -> str:
    """Return a plain decimal string without exponent or trailing zeros ("4.99", "1200")."""
    return format(value.normalize(), "f")


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
        if FORBIDDEN_CHARACTERS.search(data):
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
    """A decimal above zero (or at least zero when `inclusive`), from a string or a JSON number, never via floats."""

    default_error_messages = {
        "not_positive": "Must be greater than 0.",
        "negative": "Must be greater than or equal to 0.",
    }

    def __init__(self, *, inclusive: bool = False, **kwargs):
        self.inclusive = inclusive
        super().__init__(**kwargs)

    def to_internal_value(self, data: object) -> Decimal:
        if isinstance(data, bool):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if self.inclusive and value < 0:
            self.fail("negative")
        if not self.inclusive and value <= 0:
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
