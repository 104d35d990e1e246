"""Template tags of the event admin: the admin index's pipeline panel."""

from django import template

from events_app.admin.dashboard import index_panel

register = template.Library()


@register.inclusion_tag("admin/events_app/pipeline_panel.html")
def pipeline_panel() -> dict:
    """Return the admin index's pipeline panel: the dashboard's backlog and worker figures (see admin.dashboard)."""
    return index_panel()
