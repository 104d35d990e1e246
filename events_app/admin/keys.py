"""API keys: issued (plaintext shown once), revoked and rotated through events_app.api.keys, never edited or deleted."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from events_app.admin.base import ADMIN_CSS, ConsoleAdmin, utc_time
from events_app.api.keys import issue_api_key, revoke_api_key, rotate_api_key
from events_app.models import ApiKey, Game


class IssueKeyForm(forms.Form):
    game = forms.ModelChoiceField(queryset=Game.objects.order_by("slug"), help_text="Create the game first if new.")
    name = forms.CharField(
        max_length=200, required=False, help_text="What uses the key, e.g. “ios-production”; helps rotating later."
    )


class KeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "active"), ("revoked", "revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(ApiKey.working_at(timezone.now()))
        if self.value() == "revoked":
            return queryset.exclude(ApiKey.working_at(timezone.now()))
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(ConsoleAdmin):
    """Keys are issued (plaintext shown once), revoked and rotated through events_app.api.keys, never edited.

    Issuing needs `add_apikey`, revoking `change_apikey`, rotating both: it revokes a key and issues one.
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
    revoked = utc_time("revoked_at", "revoked")

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
        state = "active" if obj.is_active else "revoked"
        return format_html('<span class="state-badge key-{}">{}</span>', state, state)

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/revoke/", wrap(require_POST(self.revoke_view)), name=f"{prefix}_revoke"),
            path("<path:object_id>/rotate/", wrap(require_POST(self.rotate_view)), name=f"{prefix}_rotate"),
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
        """Revoke one key (POST only)."""
        api_key = self._key_to_change(request, object_id)
        if api_key.is_active:
            revoke_api_key(api_key=api_key)
            self.log_change(request, api_key, "Revoked.")
            self.message_user(request, f"Revoked key {api_key.prefix}…; requests carrying it now get 401.")
        else:
            self.message_user(request, f"Key {api_key.prefix}… was already revoked.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:events_app_apikey_change", args=[api_key.pk]))

    def rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Replace one key with a new one for the same game and name (POST only); show the new plaintext."""
        if not self.has_rotate_permission(request):
            raise PermissionDenied
        api_key = self._key_to_change(request, object_id)
        if not api_key.is_active:
            self.message_user(request, f"Key {api_key.prefix}… is revoked; issue a new one instead.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:events_app_apikey_change", args=[api_key.pk]))
        return self._show_plaintexts(request, [self._rotate(request, api_key)], title="API key rotated")

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for api_key in queryset.filter(ApiKey.working_at(timezone.now())).select_related("game"):
            revoke_api_key(api_key=api_key)
            self.log_change(request, api_key, "Revoked.")
            revoked += 1
        skipped = queryset.count() - revoked
        text = f"Revoked {revoked} key{'s' if revoked != 1 else ''}"
        self.message_user(
            request,
            text + (f"; skipped {skipped} already revoked." if skipped else "."),
            messages.SUCCESS if revoked else messages.WARNING,
        )

    @admin.action(description="Rotate selected keys (show the new keys once)", permissions=["rotate"])
    def rotate_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        active = list(queryset.filter(ApiKey.working_at(timezone.now())).select_related("game"))
        skipped = queryset.count() - len(active)
        if not active:
            self.message_user(request, f"Rotated 0 keys; skipped {skipped} already revoked.", messages.WARNING)
            return None
        issued = [self._rotate(request, api_key) for api_key in active]
        return self._show_plaintexts(
            request, issued, title=f"Rotated {len(issued)} key{'s' if len(issued) != 1 else ''}", skipped=skipped
        )

    def _key_to_change(self, request: HttpRequest, object_id: str) -> ApiKey:
        if not self.has_change_permission(request):
            raise PermissionDenied
        api_key = self.get_object(request, unquote(object_id))
        if api_key is None:
            raise Http404("No such API key.")
        return api_key

    def _rotate(self, request: HttpRequest, api_key: ApiKey) -> tuple[ApiKey, str]:
        new_key, plaintext = rotate_api_key(api_key=api_key)
        self.log_change(request, api_key, f"Revoked: rotated to {new_key.prefix}….")
        self.log_addition(request, new_key, f"Issued: rotation of {api_key.prefix}….")
        return new_key, plaintext

    def _show_plaintexts(
        self, request: HttpRequest, issued: list[tuple[ApiKey, str]], *, title: str, skipped: int = 0
    ) -> HttpResponse:
        """Render new keys' plaintexts: the only time they are ever shown (never cached, never stored)."""
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "issued": issued,
            "skipped": skipped,
        }
        response = TemplateResponse(request, "admin/events_app/apikey/issued.html", context)
        response["Cache-Control"] = "no-store"
        return response
