"""Player privacy in the console: the suppression list per game, and erasing the players of selected events.

Adding to the list erases the player (events_app.privacy.erasure.erase_player); deleting from
it lifts the suppression (erasure.unsuppress). Both need the `events_app.erase_player`
permission and are recorded in the admin log, as is every erasure from the event list.
"""

import orjson
from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from events_app.admin.base import ADMIN_CSS, ConsoleAdmin, plural, utc_time
from events_app.models import Event, Game, SuppressedPlayer
from events_app.privacy import erasure

ERASE_PERMISSION = "events_app.erase_player"


def can_erase(request: HttpRequest) -> bool:
    """Return True if the user may erase players and lift suppressions."""
    return request.user.has_perm(ERASE_PERMISSION)


@admin.register(SuppressedPlayer)
class SuppressedPlayerAdmin(ConsoleAdmin):
    """Erased players per game, who erased them and when; adding one erases the player, deleting lifts it."""

    list_display = ["player_id", "game", "erased", "created_by", "reason"]
    list_filter = ["game"]
    list_select_related = ["game"]
    search_fields = ["=player_id"]
    search_help_text = "An exact player id."
    fields = ["game", "player_id", "reason", "erased", "created_by", "warehouse_sql"]
    readonly_fields = ["erased", "created_by", "warehouse_sql"]
    actions = ["delete_selected"]

    class Media:
        css = ADMIN_CSS

    # The console's one time format, not Django's "Dec. 7, 2026, 2:56 a.m.".
    erased = utc_time("created_at", "erased")

    def has_view_permission(self, request, obj=None) -> bool:
        return can_erase(request) or super().has_view_permission(request, obj)

    def has_add_permission(self, request) -> bool:
        return can_erase(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a suppression is added or lifted, never edited

    def has_delete_permission(self, request, obj=None) -> bool:
        return can_erase(request)

    def get_fields(self, request, obj=None):
        # Who and when are the erasure's to set: shown once it exists, not asked for.
        return self.fields if obj is not None else ["game", "player_id", "reason"]

    @admin.display(description="Snowflake SQL")
    def warehouse_sql(self, obj: SuppressedPlayer) -> str:
        # What the operator runs in the warehouse (docs/privacy.md), as erase_player prints it.
        return format_html("<pre>{}</pre>", erasure.warehouse_delete_sql(game=obj.game, player_id=obj.player_id))

    def save_model(self, request, obj: SuppressedPlayer, form, change: bool) -> None:
        # The admin wraps the whole add in one transaction: the suppression is stored in
        # it, and the erasure (short transactions of its own, under the exclusive erasure
        # lock) runs once it has committed, so the game's ingest never waits for the
        # whole erasure. A request that stored an event meanwhile is waited for and its
        # event deleted: erase_player deletes under the lock.
        obj.created_at, obj.created_by = timezone.now(), request.user.get_username()[:150]
        super().save_model(request, obj, form, change)
        by = request.user.get_username()

        def erase() -> None:
            report_erasure(request, [erasure.erase_player(game=obj.game, player_id=obj.player_id, by=by)])

        transaction.on_commit(erase)

    def delete_model(self, request, obj: SuppressedPlayer) -> None:
        erasure.unsuppress(game=obj.game, player_id=obj.player_id, by=request.user.get_username())

    def delete_queryset(self, request, queryset: QuerySet[SuppressedPlayer]) -> None:
        for suppression in queryset.select_related("game"):
            self.delete_model(request, suppression)


class EraseSelectedPlayersMixin:
    """The event list's action "Erase the players of the selected events", with a confirmation page."""

    def has_erase_permission(self, request: HttpRequest) -> bool:
        """Return True if the user may erase players (the `erase_player` permission)."""
        return can_erase(request)

    @admin.action(description="Erase the players of the selected events", permissions=["erase"])
    def erase_selected_players(self, request: HttpRequest, queryset: QuerySet[Event]):
        players = sorted(set(queryset.order_by().values_list("game__slug", "player_id")))
        if request.POST.get("post") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": f"Erase {plural(len(players), 'player')}?",
                "opts": self.opts,
                "players": [(slug, player_id, orjson.dumps([slug, player_id]).decode()) for slug, player_id in players],
                "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
                # "Select all N": the confirmation posts back the whole filtered list, not only the page's rows.
                "select_across": request.POST.get("select_across", "0"),
                "action": "erase_selected_players",
            }
            return TemplateResponse(request, "admin/events_app/event/erase_players.html", context)
        # Exactly the players the operator confirmed (and still selected): never one that
        # appeared under the filter since the confirmation page was shown.
        confirmed = {tuple(orjson.loads(value)) for value in request.POST.getlist("confirmed_player")}
        players = [player for player in players if player in confirmed]
        games = {game.slug: game for game in Game.objects.filter(slug__in={slug for slug, _ in players})}
        reason = request.POST.get("reason", "")[:500]
        results = []
        for slug, player_id in players:
            counts = erasure.erase_player(
                game=games[slug], player_id=player_id, by=request.user.get_username(), reason=reason
            )
            results.append(counts)
            suppression = SuppressedPlayer.objects.get(game=games[slug], player_id=player_id)
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=[suppression],
                action_flag=ADDITION if counts.newly_suppressed else CHANGE,
                change_message=f"Erased from the event list: {counts.events} events, {counts.issues} delivery issues, "
                f"{counts.rejected_events} rejected events deleted.",
                single_object=True,
            )
        report_erasure(request, results)
        return None


def report_erasure(request: HttpRequest, results: list[erasure.ErasureCounts]) -> None:
    """Tell the operator what erasing did, in counts, and what is left for S3 and Snowflake."""
    messages.success(
        request,
        f"Erased {plural(len(results), 'player')}: deleted {plural(sum(r.events for r in results), 'event')}, "
        f"{plural(sum(r.issues for r in results), 'delivery issue')} and "
        f"{plural(sum(r.rejected_events for r in results), 'rejected event')}; their later events are suppressed. "
        "Lines already in S3 and Snowflake stay until removed there (each suppressed player's page shows the "
        "Snowflake SQL; see docs/privacy.md).",
    )
