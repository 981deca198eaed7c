"""VWAP and volume over time as an SVG chart, embedded in Markdown metadata.

Dagster plots numeric metadata against the time each event was logged, one point per
materialization, so windows that closed between two runs would never show as points. A chart
drawn from the table itself shows every window of the last hour, however the runs fell; Dagster's
Markdown metadata renders `data:` images (the pattern its users follow for matplotlib figures),
and a hand-written SVG needs no plotting library. Where windows are missing (no trade, or nothing
landed) the VWAP line stops and the missing time is shaded, so no line crosses a gap.
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
# The narrowest gap band (px) that says how long it is.
MIN_LABELLED_GAP = 80
_LABEL = 'font-family="sans-serif" font-size="11" fill="#555"'


def _scale(value: float, low: float, high: float, top: float, height: float) -> float:
    """`value` in [low, high] as a y coordinate from `top + height` (low) up to `top` (high)."""
    span = high - low
    share = 0.5 if span <= 0 else (value - low) / span
    return top + height * (1 - share)


def runs(windows: Sequence[dict[str, Any]], window: dt.timedelta) -> list[list[dict[str, Any]]]:
    """The windows with a VWAP (oldest first) in runs of consecutive ones.

    A run ends where the next window starts more than one window length later: no trade fell in
    between (the market was quiet, or nothing was landed then), so no line may cross it.
    """
    found: list[list[dict[str, Any]]] = []
    for w in windows:
        if w["vwap"] is None:
            continue
        if found and w["window_start"] - found[-1][-1]["window_start"] <= window:
            found[-1].append(w)
        else:
            found.append([w])
    return found


def _duration_label(span: dt.timedelta) -> str:
    """`50 min`, `2 h 5 min`, `30 s`: how long a gap is, for its label."""
    seconds = round(span.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def vwap_volume_svg(
    symbol: str, windows: Sequence[dict[str, Any]], decimals: int, window: dt.timedelta
) -> str:
    """An SVG of one symbol's windows (oldest first): a VWAP line above volume bars.

    The line is broken where windows are missing (see `runs`), and the missing time is shaded
    and labelled; a run of a single window is a dot.
    """
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

    def y(w: dict[str, Any]) -> float:
        return _scale(w["vwap"], low, high, price_top, PRICE_HEIGHT)

    lines = ""
    gaps = ""
    previous: dict[str, Any] | None = None
    for run in runs(windows, window):
        if previous is not None:  # the slots between the two runs hold no window
            left = x(previous["window_start"]) + step / 2
            right = x(run[0]["window_start"]) - step / 2
            label = _duration_label(run[0]["window_start"] - previous["window_start"] - window)
            gaps += (
                f'<rect class="gap" x="{left:.1f}" y="{price_top}" width="{right - left:.1f}" '
                f'height="{volume_top + VOLUME_HEIGHT - price_top}" fill="#eeeeee"/>'
            )
            if right - left >= MIN_LABELLED_GAP:  # a narrower band would be overwritten
                gaps += (
                    f'<text x="{(left + right) / 2:.1f}" y="{price_top + PRICE_HEIGHT / 2:.1f}" '
                    f'text-anchor="middle" {_LABEL}>no data for {label}</text>'
                )
        if len(run) == 1:
            lines += (
                f'<circle cx="{x(run[0]["window_start"]):.1f}" cy="{y(run[0]):.1f}" r="2.5" '
                'fill="#1f5fa8"/>'
            )
        else:
            points = " ".join(f"{x(w['window_start']):.1f},{y(w):.1f}" for w in run)
            lines += f'<polyline points="{points}" fill="none" stroke="#1f5fa8" stroke-width="2"/>'
        previous = run[-1]
    bars = "".join(
        f'<rect class="volume" x="{x(w["window_start"]) - step * 0.4:.1f}" '
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
        f"{gaps}{lines}{bars}"
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
