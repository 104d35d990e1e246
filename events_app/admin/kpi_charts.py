"""The KPI page's own charts as inline SVG and HTML: a line chart, and the retention cohort triangle's cell shades."""

import math
from collections.abc import Callable, Sequence
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from events_app.admin.charts import HEIGHT, MARGIN_BOTTOM, MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, PALETTE, WIDTH

MAX_X_LABELS = 12


def line_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float | Decimal | None]],
    value_format: Callable[[float | Decimal], str],
) -> SafeString:
    """Return a <figure> with one polyline per series over `labels` (a None value breaks the line), and its legend."""
    values = [float(value) for points in series.values() for value in points if value is not None]
    top = _nice_top(max(values, default=0.0))
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    slot = plot_width / max(len(labels), 1)

    def x(index: int) -> float:
        return MARGIN_LEFT + index * slot + slot / 2

    def y(value: float) -> float:
        return MARGIN_TOP + plot_height - value / top * plot_height

    parts = []
    for tick in range(5):
        value = top * tick / 4
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
                '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
                MARGIN_LEFT,
                WIDTH - MARGIN_RIGHT,
                _n(y(value)),
                _n(y(value)),
                MARGIN_LEFT - 6,
                _n(y(value) + 4),
                value_format(value),
            )
        )
    every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    for index, label in enumerate(labels):
        if index % every == 0:
            parts.append(
                format_html(
                    '<text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                    _n(x(index)),
                    HEIGHT - MARGIN_BOTTOM + 16,
                    label,
                )
            )
    for number, (name, points) in enumerate(series.items()):
        runs: list[list[str]] = [[]]
        for index, value in enumerate(points):
            if value is None:
                runs.append([])
            else:
                runs[-1].append(f"{_n(x(index))},{_n(y(float(value)))}")
        for one in filter(None, runs):
            parts.append(
                format_html(
                    '<polyline class="line" fill="none" stroke="{}" stroke-width="2" points="{}" data-series="{}">'
                    "</polyline>",
                    PALETTE[number % len(PALETTE)],
                    " ".join(one),
                    name,
                )
            )
    legend = format_html_join(
        "",
        '<li><span class="swatch" style="background:{}"></span>{}</li>',
        ((PALETTE[number % len(PALETTE)], name) for number, name in enumerate(series)),
    )
    return format_html(
        '<figure class="chart"><figcaption>{}</figcaption>'
        '<svg viewBox="0 0 {} {}" role="img" aria-label="{}" preserveAspectRatio="xMinYMin meet">{}</svg>'
        '<ul class="legend">{}</ul></figure>',
        title,
        WIDTH,
        HEIGHT,
        title,
        mark_safe("".join(parts)),  # every part was escaped by format_html
        legend,
    )


def shade(fraction: float | None) -> str:
    """Return the CSS background of a retention cell: the darker, the more players came back."""
    if fraction is None:
        return ""
    return f"background: rgba(0, 114, 178, {0.08 + 0.8 * min(max(fraction, 0.0), 1.0):.2f})"


def _nice_top(maximum: float) -> float:
    """Return a round number at or above `maximum` for the axis' top (1, 2 or 5 times a power of ten)."""
    if maximum <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(maximum))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= maximum)


def _n(value: float) -> str:
    return f"{value:.1f}"
