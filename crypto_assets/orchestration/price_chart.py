"""VWAP and volume over time as an SVG chart, embedded in Markdown metadata.

Dagster plots numeric metadata against the time each event was logged, one point per
materialization, so windows that closed between two runs would never show as points. A chart
drawn from the table itself shows every window of the last hour, however the runs fell; Dagster's
Markdown metadata renders `data:` images (the pattern its users follow for matplotlib figures),
and a hand-written SVG needs no plotting library.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from typing import Any

WIDTH = 720
PRICE_HEIGHT = 150
VOLUME_HEIGHT = 60
MARGIN_LEFT = 90
MARGIN = 12
_LABEL = 'font-family="sans-serif" font-size="11" fill="#555"'


def _scale(value: float, low: float, high: float, top: float, height: float) -> float:
    """`value` in [low, high] as a y coordinate from `top + height` (low) up to `top` (high)."""
    span = high - low
    share = 0.5 if span <= 0 else (value - low) / span
    return top + height * (1 - share)


def vwap_volume_svg(
    symbol: str, windows: Sequence[dict[str, Any]], decimals: int, window: dt.timedelta
) -> str:
    """An SVG of one symbol's windows (oldest first): a VWAP line above volume bars."""
    starts = [w["window_start"] for w in windows]
    first, last = min(starts), max(starts)
    slots = max(round((last - first) / window) + 1, 1)
    step = (WIDTH - MARGIN_LEFT - MARGIN) / slots
    vwaps = [w["vwap"] for w in windows if w["vwap"] is not None]
    low, high = min(vwaps, default=0.0), max(vwaps, default=0.0)
    most = max((w["volume"] or 0.0 for w in windows), default=0.0)
    price_top, volume_top = MARGIN + 14, MARGIN + 14 + PRICE_HEIGHT + 24
    total = volume_top + VOLUME_HEIGHT + 20

    def x(start: dt.datetime) -> float:
        return MARGIN_LEFT + step * (round((start - first) / window) + 0.5)

    points = " ".join(
        f"{x(w['window_start']):.1f},{_scale(w['vwap'], low, high, price_top, PRICE_HEIGHT):.1f}"
        for w in windows
        if w["vwap"] is not None
    )
    bars = "".join(
        f'<rect x="{x(w["window_start"]) - step * 0.4:.1f}" '
        f'y="{_scale(w["volume"] or 0.0, 0.0, most, volume_top, VOLUME_HEIGHT):.1f}" '
        f'width="{step * 0.8:.1f}" '
        f'height="{VOLUME_HEIGHT * ((w["volume"] or 0.0) / most if most else 0):.1f}" '
        'fill="#9bb7d4"/>'
        for w in windows
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total}" '
        f'viewBox="0 0 {WIDTH} {total}"><rect width="100%" height="100%" fill="white"/>'
        f'<text x="{MARGIN_LEFT}" y="{MARGIN + 4}" {_LABEL} font-weight="bold">{symbol}: VWAP '
        f"(line) and volume (bars) per {window_label(window)} window</text>"
        f'<text x="{MARGIN_LEFT - 6}" y="{price_top + 4}" text-anchor="end" {_LABEL}>'
        f"{high:,.{decimals}f}</text>"
        f'<text x="{MARGIN_LEFT - 6}" y="{price_top + PRICE_HEIGHT + 4}" text-anchor="end" '
        f"{_LABEL}>{low:,.{decimals}f}</text>"
        f'<text x="{MARGIN_LEFT - 6}" y="{volume_top + 4}" text-anchor="end" {_LABEL}>'
        f"vol {most:,.4g}</text>"
        f'<polyline points="{points}" fill="none" stroke="#1f5fa8" stroke-width="2"/>{bars}'
        f'<text x="{MARGIN_LEFT}" y="{total - 4}" {_LABEL}>{first:%Y-%m-%d %H:%M} UTC</text>'
        f'<text x="{WIDTH - MARGIN}" y="{total - 4}" text-anchor="end" {_LABEL}>'
        f"{last:%H:%M} UTC</text></svg>"
    )


def window_label(window: dt.timedelta) -> str:
    """`1-minute`, `30-second`, `5-minute`: how long a window is, for a caption."""
    seconds = round(window.total_seconds())
    if seconds % 60 == 0:
        return f"{seconds // 60}-minute"
    return f"{seconds}-second"


def svg_image_markdown(alt: str, svg: str) -> str:
    """Markdown that shows `svg` inline, as a base64 `data:` image."""
    encoded = base64.b64encode(svg.encode()).decode("ascii")
    return f"![{alt}](data:image/svg+xml;base64,{encoded})"
