"""Exchange rates: browse and edit the daily rate table, see how many events with revenue still lack a rate."""

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from events_app import conf
from events_app.admin.base import ConsoleAdmin, plural
from events_app.admin.queries import events_without_rate
from events_app.event_types import revenue_types
from events_app.models import ExchangeRate
from events_app.money.codes import CURRENCY_CODES
from events_app.money.currency import clear_rate_cache, fx_rate_from


class ExchangeRateForm(forms.ModelForm):
    """Currency codes are checked against ISO 4217 and upper-cased; the base defaults to EVENTS_BASE_CURRENCY."""

    class Meta:
        model = ExchangeRate
        fields = ["date", "base_currency", "currency", "rate", "source"]
        help_texts = {
            "rate": "Units of the currency that 1 unit of the base currency buys on this day.",
            "source": "Where the rate comes from, e.g. “ECB reference rate” or “manual”.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance.pk:
            self.fields["base_currency"].initial = conf.base_currency()
            self.fields["source"].initial = "manual"

    def _clean_code(self, name: str) -> str:
        code = (self.cleaned_data.get(name) or "").strip().upper()
        if code not in CURRENCY_CODES:
            raise forms.ValidationError(f"{code or 'This'} is not an ISO 4217 currency code.")
        return code

    def clean_currency(self) -> str:
        return self._clean_code("currency")

    def clean_base_currency(self) -> str:
        return self._clean_code("base_currency")

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("currency") and cleaned.get("currency") == cleaned.get("base_currency"):
            self.add_error("currency", "A currency has no rate against itself.")
        return cleaned


@admin.register(ExchangeRate)
class ExchangeRateAdmin(ConsoleAdmin):
    form = ExchangeRateForm
    list_display = ["date", "base_currency", "currency", "rate", "base_per_unit", "source"]
    list_filter = ["base_currency", "currency", "source"]
    search_fields = ["=currency"]
    date_hierarchy = "date"
    list_per_page = 100

    @admin.display(description="1 unit of currency in base")
    def base_per_unit(self, obj: ExchangeRate) -> str:
        return f"{fx_rate_from(obj.rate)} {obj.base_currency}"

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(
            request, extra_context={"subtitle": missing_rates_note(), **(extra_context or {})}
        )

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        clear_rate_cache()  # other processes pick the change up within EVENTS_FX_CACHE_SECONDS

    def delete_model(self, request, obj) -> None:
        super().delete_model(request, obj)
        clear_rate_cache()

    def delete_queryset(self, request, queryset) -> None:
        super().delete_queryset(request, queryset)
        clear_rate_cache()


def missing_rates_note() -> str:
    """Say how many events with revenue (per type: purchases, ad impressions, ...) still lack a rate, or that none do.

    The count reads the partial index of events waiting for a rate, which stays small.
    """
    base = conf.base_currency()
    waiting = events_without_rate()
    nouns = {event_type: event_type.replace("_", " ") for event_type in revenue_types()}
    if not waiting:
        first, *others = nouns.values()
        rest = "".join(f" So has every {noun} with revenue." for noun in others)
        return f"Every {first} has its amount in the base currency {base}.{rest}"
    counts = [plural(count, nouns[event_type]) for event_type, count in waiting.items()]
    return format_html(
        '<a href="{}?revenue__isnull=False&amp;revenue_base__isnull=True" id="missing-rates-link">{} {} a rate</a> '
        "in the base currency {}: import rates, then run <code>manage.py reconvert</code>.",
        reverse("admin:events_app_event_changelist"),
        " and ".join(counts),
        "lacks" if sum(waiting.values()) == 1 else "lack",
        base,
    )
