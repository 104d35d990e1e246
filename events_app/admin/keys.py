"""API keys: issued (plaintext shown once), revoked and rotated through events_app.api.keys, never edited or deleted."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_http_methods

from events_app.admin.base import ADMIN_CSS, ConsoleAdmin, format_utc, utc_time
from events_app.api.keys import ROTATION_GRACE, issue_api_key, revoke_api_key, rotate_api_key, works_until
from events_app.models import ApiKey, Game

# The graces an operator picks from when rotating in the console; the command's default among them.
GRACE_HOURS = sorted({0, 24, int(ROTATION_GRACE.total_seconds() // 3600), 30 * 24, 90 * 24})


class IssueKeyForm(forms.Form):
    game = forms.ModelChoiceField(queryset=Game.objects.order_by("slug"), help_text="Create the game first if new.")
    name = forms.CharField(
        max_length=200, required=False, help_text="What uses the key, e.g. “ios-production”; helps rotating later."
    )


class RotateKeyForm(forms.Form):
    """How long the old key keeps working: each choice says until when, by the rule rotate_api_key applies."""

    grace_hours = forms.TypedChoiceField(coerce=int, widget=forms.RadioSelect, label="The old key keeps working")

    def __init__(self, *args, ends: datetime | None = None, **kwargs):
        """`ends`: when the (single) key to rotate already stops working, if it does."""
        super().__init__(*args, **kwargs)
        now = timezone.now()
        field = self.fields["grace_hours"]
        field.choices = [
            (hours, _grace_label(hours, works_until(ends=ends, grace=timedelta(hours=hours), now=now)))
            for hours in GRACE_HOURS
        ]
        field.initial = int(ROTATION_GRACE.total_seconds() // 3600)


def _grace_label(hours: int, until: datetime) -> str:
    if not hours:
        return "not at all: it answers 401 from now on"
    span = f"{hours // 24} days" if hours % 24 == 0 and hours >= 48 else f"{hours} hours"
    default = " (the default)" if timedelta(hours=hours) == ROTATION_GRACE else ""
    return f"for {span}{default}, until {format_utc(until)}"


class KeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "active"), ("expiring", "expiring (rotated, in its grace)"), ("revoked", "revoked")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "expiring":
            return queryset.filter(revoked_at__gt=now)
        if self.value() == "revoked":
            return queryset.exclude(ApiKey.working_at(now))
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(ConsoleAdmin):
    """Keys are issued (plaintext shown once), revoked and rotated through events_app.api.keys, never edited.

    Issuing needs `add_apikey`, revoking `change_apikey`, rotating both: it revokes a key and issues one.
    Rotating and revoking each ask first, on a page that says until when the old key works and when it
    was last used; a rotated key stays "expiring" through its grace, which revoking ends at once.
    """

    list_display = ["key_prefix", "game", "name", "state", "created", "last_used", "revoked"]
    list_filter = [KeyStateFilter, "game"]
    list_select_related = ["game"]
    search_fields = ["=prefix", "name", "game__slug"]
    fields = ["game", "name", "key_prefix", "state", "created", "last_used", "revoked"]
    readonly_fields = ["game", "key_prefix", "state", "created", "last_used", "revoked"]
    actions = ["revoke_selected", "rotate_selected"]

    class Media:
        css = ADMIN_CSS

    created = utc_time("created_at", "created")
    last_used = utc_time("last_used_at", "last used")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the row keeps the key's history

    def has_rotate_permission(self, request: HttpRequest) -> bool:
        """Return True if the user may rotate keys: change (the old key is revoked) and add (a new one is issued)."""
        return self.has_change_permission(request) and self.has_add_permission(request)

    @admin.display(description="key", ordering="prefix")
    def key_prefix(self, obj: ApiKey) -> str:
        return format_html("<code>{}…</code>", obj.prefix)

    @admin.display(description="state", ordering="revoked_at")
    def state(self, obj: ApiKey) -> str:
        state = _state(obj)
        return format_html('<span class="state-badge key-{}">{}</span>', state, state)

    @admin.display(description="works until", ordering="revoked_at")
    def revoked(self, obj: ApiKey) -> str:
        """When the key stops (or stopped) working: a rotation's grace end, or when it was revoked."""
        return format_utc(obj.revoked_at) if obj.revoked_at is not None else ""

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        confirm_first = require_http_methods(["GET", "POST"])
        return [
            path("<path:object_id>/revoke/", wrap(confirm_first(self.revoke_view)), name=f"{prefix}_revoke"),
            path("<path:object_id>/rotate/", wrap(confirm_first(self.rotate_view)), name=f"{prefix}_rotate"),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        """Issue a key: a form on GET; on POST the new key's plaintext, shown this once."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = IssueKeyForm(request.POST)
            if form.is_valid():
                game, name = form.cleaned_data["game"], form.cleaned_data["name"]
                api_key, plaintext = issue_api_key(game_slug=game.slug, name=name)
                self.log_addition(request, api_key, "Issued.")
                return self._show_plaintexts(request, [(api_key, plaintext)], title="API key issued")
        else:
            form = IssueKeyForm(initial={"game": request.GET.get("game")})
        context = {
            **self.admin_site.each_context(request),
            "title": "Issue an API key",
            "opts": self.opts,
            "form": form,
        }
        return TemplateResponse(request, "admin/events_app/apikey/issue.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_manage_keys": self.has_change_permission(request),
            "can_rotate": self.has_rotate_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Revoke one key now, ending any grace: a confirmation on GET, the revocation on POST."""
        api_key = self._key_to_change(request, object_id)
        if not api_key.is_active:
            self.message_user(request, f"Key {api_key.prefix}… was already revoked.", messages.WARNING)
        elif request.method == "POST":
            self._revoke(request, [api_key])
        else:
            return self._confirm_revoke(request, [api_key])
        return HttpResponseRedirect(reverse("admin:events_app_apikey_change", args=[api_key.pk]))

    def rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Replace one key with a new one for the same game and name: a confirmation with the grace to choose on GET,
        the rotation on POST (the new plaintext shown once)."""
        if not self.has_rotate_permission(request):
            raise PermissionDenied
        api_key = self._key_to_change(request, object_id)
        if not api_key.is_active:
            self.message_user(request, f"Key {api_key.prefix}… is revoked; issue a new one instead.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:events_app_apikey_change", args=[api_key.pk]))
        form = RotateKeyForm(request.POST if request.method == "POST" else None, ends=api_key.revoked_at)
        if not form.is_valid():
            return self._confirm_rotation(request, [api_key], form)
        grace = timedelta(hours=form.cleaned_data["grace_hours"])
        issued = [self._rotate(request, api_key, grace)]
        return self._show_plaintexts(request, issued, title="API key rotated", replaced=[api_key])

    @admin.action(description="Revoke selected keys now (ends a rotation's grace)", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        working = list(queryset.filter(ApiKey.working_at(timezone.now())).select_related("game"))
        skipped = queryset.count() - len(working)
        if working and "confirmed" not in request.POST:
            return self._confirm_revoke(request, working, skipped=skipped)
        self._revoke(request, working, skipped=skipped)
        return None

    @admin.action(description="Rotate selected keys (show the new keys once)", permissions=["rotate"])
    def rotate_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        active = list(queryset.filter(ApiKey.working_at(timezone.now())).select_related("game"))
        skipped = queryset.count() - len(active)
        if not active:
            self.message_user(request, f"Rotated 0 keys; skipped {skipped} already revoked.", messages.WARNING)
            return None
        form = RotateKeyForm(request.POST if "confirmed" in request.POST else None)
        if not form.is_valid():
            return self._confirm_rotation(request, active, form, skipped=skipped)
        grace = timedelta(hours=form.cleaned_data["grace_hours"])
        issued = [self._rotate(request, api_key, grace) for api_key in active]
        title = f"Rotated {len(issued)} key{'s' if len(issued) != 1 else ''}"
        return self._show_plaintexts(request, issued, title=title, skipped=skipped, replaced=active)

    def _key_to_change(self, request: HttpRequest, object_id: str) -> ApiKey:
        if not self.has_change_permission(request):
            raise PermissionDenied
        api_key = self.get_object(request, unquote(object_id))
        if api_key is None:
            raise Http404("No such API key.")
        return api_key

    def _revoke(self, request: HttpRequest, keys: list[ApiKey], *, skipped: int = 0) -> None:
        for api_key in keys:
            revoke_api_key(api_key=api_key)
            self.log_change(request, api_key, "Revoked.")
        if len(keys) == 1 and not skipped:
            text = f"Revoked key {keys[0].prefix}…; requests carrying it now get 401."
        else:
            text = f"Revoked {len(keys)} key{'s' if len(keys) != 1 else ''}"
            text += f"; skipped {skipped} already revoked." if skipped else "."
        self.message_user(request, text, messages.SUCCESS if keys else messages.WARNING)

    def _rotate(self, request: HttpRequest, api_key: ApiKey, grace: timedelta) -> tuple[ApiKey, str]:
        new_key, plaintext = rotate_api_key(api_key=api_key, grace=grace)
        until = format_utc(api_key.revoked_at)
        self.log_change(request, api_key, f"Rotated to {new_key.prefix}…: works until {until}.")
        self.log_addition(request, new_key, f"Issued: rotation of {api_key.prefix}….")
        return new_key, plaintext

    def _confirm_rotation(
        self, request: HttpRequest, keys: list[ApiKey], form: RotateKeyForm, *, skipped: int = 0
    ) -> HttpResponse:
        """Ask before rotating: the keys, when each was last used, and until when the old ones keep working."""
        return self._confirmation(
            request,
            keys,
            template="rotate_confirm.html",
            title=f"Rotate {_keys(keys)}?",
            form=form,
            skipped=skipped,
            action="rotate_selected",
        )

    def _confirm_revoke(self, request: HttpRequest, keys: list[ApiKey], *, skipped: int = 0) -> HttpResponse:
        """Ask before revoking: the keys, when each was last used, and the grace a revocation would end."""
        return self._confirmation(
            request,
            keys,
            template="revoke_confirm.html",
            title=f"Revoke {_keys(keys)} now?",
            skipped=skipped,
            action="revoke_selected",
        )

    def _confirmation(self, request: HttpRequest, keys: list[ApiKey], *, template: str, **extra) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "keys": [(api_key, _state(api_key)) for api_key in keys],
            # From the change list's action menu, the answer goes back to the action; from a key's page, to its view.
            "from_action": helpers.ACTION_CHECKBOX_NAME in request.POST,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            **extra,
        }
        return TemplateResponse(request, f"admin/events_app/apikey/{template}", context)

    def _show_plaintexts(
        self,
        request: HttpRequest,
        issued: list[tuple[ApiKey, str]],
        *,
        title: str,
        skipped: int = 0,
        replaced: Sequence[ApiKey] = (),
    ) -> HttpResponse:
        """Render new keys' plaintexts: the only time they are ever shown (never cached, never stored).

        After a rotation, `replaced` are the old keys: the page says until when each still works.
        """
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "issued": issued,
            "skipped": skipped,
            "replaced": replaced,
        }
        response = TemplateResponse(request, "admin/events_app/apikey/issued.html", context)
        response["Cache-Control"] = "no-store"
        return response


def _state(api_key: ApiKey) -> str:
    """Return "active" (no end), "expiring" (rotated: works until its grace ends) or "revoked"."""
    if api_key.revoked_at is None:
        return "active"
    return "expiring" if api_key.is_active else "revoked"


def _keys(keys: list[ApiKey]) -> str:
    return f"key {keys[0].prefix}…" if len(keys) == 1 else f"{len(keys)} keys"
