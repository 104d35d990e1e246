"""Charts rendered on the server as inline SVG: no JavaScript, no chart library, nothing from a CDN."""

import math
from collections.abc import Callable, Sequence
from decimal import Decimal

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

# Distinguishable colours, also for the colour-blind (Okabe-Ito), in the order series get them.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000")

WIDTH, HEIGHT = 760, 240
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 12, 12, 36
MAX_X_LABELS = 12


def format_count(value: float | Decimal) -> str:
    return f"{value:,.0f}"


def format_money(value: float | Decimal) -> str:
    return f"{value:,.2f}"


def stacked_bar_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float | Decimal]],
    value_format: Callable[[float | Decimal], str] = format_count,
    empty_text: str = "No data in this period",
) -> SafeString:
    """Return a <figure> with a stacked bar chart of `series` over `labels`, and its legend.

    Every bar segment is a <rect class="bar"> carrying its series, bucket and value as
    data attributes and a <title> shown on hover; series keep their order, bottom up.
    """
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    totals = [sum(float(values[i]) for values in series.values()) for i in range(len(labels))]
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    step, top = _axis(max(totals, default=0.0))

    parts: list[str] = []
    # Horizontal grid lines with their values.
    for tick in range(round(top / step) + 1):
        value = tick * step
        y = MARGIN_TOP + plot_height - value / top * plot_height
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
                '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
                MARGIN_LEFT,
                WIDTH - MARGIN_RIGHT,
                _n(y),
                _n(y),
                MARGIN_LEFT - 6,
                _n(y + 4),
                _compact(value),
            )
        )

    slot = plot_width / max(len(labels), 1)
    bar_width = max(slot * 0.72, 1.0)
    label_every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    for index, label in enumerate(labels):
        x = MARGIN_LEFT + index * slot + (slot - bar_width) / 2
        base = MARGIN_TOP + plot_height
        for name, values in series.items():
            value = values[index]
            if not value:
                continue
            height = float(value) / top * plot_height
            base -= height
            parts.append(
                format_html(
                    '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}" data-series="{}" '
                    'data-bucket="{}" data-value="{}"><title>{} · {}: {}</title></rect>',
                    _n(x),
                    _n(base),
                    _n(bar_width),
                    _n(height),
                    colors[name],
                    name,
                    label,
                    value,
                    label,
                    name,
                    value_format(value),
                )
            )
        if index % label_every == 0:
            parts.append(
                format_html(
                    '<text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                    _n(x + bar_width / 2),
                    HEIGHT - MARGIN_BOTTOM + 16,
                    label,
                )
            )
    parts.append(
        format_html(
            '<line class="baseline" x1="{}" x2="{}" y1="{}" y2="{}"></line>',
            MARGIN_LEFT,
            WIDTH - MARGIN_RIGHT,
            MARGIN_TOP + plot_height,
            MARGIN_TOP + plot_height,
        )
    )
    if not any(totals):
        parts.append(
            format_html(
                '<text class="empty" x="{}" y="{}" text-anchor="middle">{}</text>',
                MARGIN_LEFT + plot_width / 2,
                MARGIN_TOP + plot_height / 2,
                empty_text,
            )
        )

    legend = format_html_join(
        "",
        '<li><span class="swatch" style="background:{}"></span>{} <span class="quiet">{}</span></li>',
        ((colors[name], name, value_format(sum(values, start=0))) for name, values in series.items()),
    )
    return format_html(
        '<figure class="chart"><figcaption>{}</figcaption>'
        '<svg viewBox="0 0 {} {}" role="img" aria-label="{}" preserveAspectRatio="xMinYMin meet">{}</svg>'
        '<ul class="legend">{}</ul></figure>',
        title,
        WIDTH,
        HEIGHT,
        title,
        mark_safe("".join(parts)),
        legend,
    )


def _axis(maximum: float) -> tuple[float, float]:
    """Return a round step between grid lines and the axis top (a multiple of it) above `maximum`."""
    if maximum <= 0:
        return 1.0, 4.0
    rough = maximum / 4
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= rough)
    return step, step * math.ceil(maximum / step)


def _compact(value: float) -> str:
    """Return an axis label: 950, 1.5k, 2M."""
    for divisor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= divisor:
            return f"{value / divisor:.3g}{suffix}"
    return f"{value:.3g}" if value != int(value) else str(int(value))


def _n(value: float) -> str:
    """Return a coordinate with at most one decimal, as SVG needs no more."""
    return escape(f"{value:.1f}".rstrip("0").rstrip("."))
