"""What a built-in event type declares: its properties serializer, top-level needs, revenue and warehouse columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from rest_framework import serializers

from events_app.event_types.fields import CodeField, KeepUnknownKeysSerializer, PositiveDecimalField, StrictCharField
from events_app.money.codes import COUNTRY_CODES, CURRENCY_CODES
from events_app.money.currency import minor_units_error
from sdk.contract import DECIMAL_MAX_DIGITS, DECIMAL_MAX_PLACES, Money, Prop, TypeRules


@dataclass(frozen=True)
class WarehouseColumn:
    """A typed column of the type's warehouse view: its name, Snowflake type and path in the raw record."""

    name: str
    sql_type: str  # STRING, NUMBER(38,6), ...
    path: str  # in the game_events view, e.g. properties:level (warehouse/07_type_views.sql)


@dataclass(frozen=True)
class EventType:
    """One built-in event type as the server handles it."""

    name: str
    rules: TypeRules
    properties_serializer: type[serializers.Serializer]
    description: str
    # A property whose value, like event_id, may be stored once per game (a purchase's receipt).
    unique_property: str | None = None
    warehouse_columns: tuple[WarehouseColumn, ...] = field(default=())

    @property
    def required_fields(self) -> tuple[str, ...]:
        return self.rules.required_fields

    @property
    def money(self) -> Money | None:
        """Where the type's revenue is, if it has any (converted to the base currency)."""
        return self.rules.money


def build_type(
    name: str,
    *,
    rules: TypeRules,
    description: str,
    unique_property: str | None = None,
    warehouse_columns: tuple[WarehouseColumn, ...] = (),
) -> EventType:
    """Return the EventType of `name`, its properties serializer built from the contract's `rules`."""
    return EventType(
        name=name,
        rules=rules,
        properties_serializer=properties_serializer(name, rules),
        description=description,
        unique_property=unique_property,
        warehouse_columns=warehouse_columns,
    )


def properties_serializer(name: str, rules: TypeRules) -> type[serializers.Serializer]:
    """Return a serializer class for the properties of type `name`: one DRF field per contract rule."""
    attrs: dict = {name_: _field(prop) for name_, prop in rules.properties.items()}
    attrs["__doc__"] = f"Properties of a `{name}` event; unknown keys are kept."
    attrs["__module__"] = __name__
    bases = (KeepUnknownKeysSerializer,)
    if rules.money is not None:
        bases = (_MoneyMixin, *bases)
        attrs["money"] = rules.money
    class_name = "".join(part.title() for part in name.split("_")) + "PropertiesSerializer"
    return type(class_name, bases, attrs)


def _field(prop: Prop) -> serializers.Field:
    optional = {} if prop.required else ({"default": prop.default} if prop.default is not None else {"required": False})
    if prop.kind == "string":
        return StrictCharField(max_length=prop.max_length, **optional)
    if prop.kind == "choice":
        return serializers.ChoiceField(choices=prop.choices, **optional)
    if prop.kind == "integer":
        return serializers.IntegerField(min_value=prop.minimum, max_value=prop.maximum, **optional)
    if prop.kind == "decimal":
        return PositiveDecimalField(
            max_digits=DECIMAL_MAX_DIGITS,
            decimal_places=DECIMAL_MAX_PLACES,
            coerce_to_string=True,
            inclusive=prop.inclusive,
            **optional,
        )
    if prop.kind == "country":
        return CodeField(codes=COUNTRY_CODES, standard="ISO 3166-1 alpha-2", **optional)
    if prop.kind == "currency":
        return CodeField(codes=CURRENCY_CODES, standard="ISO 4217", **optional)
    raise ValueError(f"unknown property kind {prop.kind!r}")


class _MoneyMixin:
    """Checks of an amount and its currency: the currency given with the amount, ISO 4217 decimals where they apply."""

    money: Money

    def validate(self, attrs: dict) -> dict:
        amount: Decimal | None = attrs.get(self.money.amount)
        currency: str | None = attrs.get(self.money.currency)
        if amount is None:
            return attrs
        if currency is None:
            if self.money.currency_required:
                message = f"This field is required when {self.money.amount} is given."
                raise serializers.ValidationError({self.money.currency: [message]}, code="required")
            return attrs
        error = minor_units_error(amount, currency) if self.money.minor_units else None
        if error:
            raise serializers.ValidationError({self.money.amount: [error]}, code="too_many_decimals")
        return attrs
