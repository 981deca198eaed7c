"""The VWAP and volume chart: one line per run of consecutive windows, a gap where none exist."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from crypto_assets.orchestration.price_chart import vwap_volume_svg

SVG = "{http://www.w3.org/2000/svg}"
T0 = dt.datetime(2024, 8, 9, 0, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def _windows(minutes: list[int]) -> list[dict]:
    """One window at each of `minutes` after T0, VWAP rising a dollar a minute."""
    return [
        {
            "window_start": T0 + m * MINUTE,
            "window_end": T0 + (m + 1) * MINUTE,
            "vwap": 60000.0 + m,
            "volume": 1.0 + m,
        }
        for m in minutes
    ]


def _chart(minutes: list[int]) -> ET.Element:
    return ET.fromstring(vwap_volume_svg("BTCUSDT", _windows(minutes), 2, MINUTE))


def _xs(polyline: ET.Element) -> list[float]:
    return [float(point.split(",")[0]) for point in polyline.get("points").split()]


def test_a_gap_between_windows_breaks_the_line_and_is_shown():
    # Three windows, fifty minutes without any, then five: no line across the fifty minutes.
    chart = _chart([0, 1, 2, *range(53, 58)])
    lines = chart.findall(f"{SVG}polyline")
    assert [len(_xs(line)) for line in lines] == [3, 5]
    gaps = [rect for rect in chart.iter(f"{SVG}rect") if rect.get("class") == "gap"]
    assert len(gaps) == 1
    left, width = float(gaps[0].get("x")), float(gaps[0].get("width"))
    # The gap covers exactly the fifty missing slots, between the two lines.
    assert _xs(lines[0])[-1] < left < left + width < _xs(lines[1])[0]
    step = (_xs(lines[1])[-1] - _xs(lines[0])[0]) / 57  # minutes 0 to 57
    assert abs(width - 50 * step) < 0.5
    assert "no data for 50 min" in [text.text for text in chart.iter(f"{SVG}text")]
    bars = [rect for rect in chart.iter(f"{SVG}rect") if rect.get("class") == "volume"]
    assert len(bars) == 8


def test_consecutive_windows_are_one_line_without_a_gap():
    chart = _chart(list(range(10)))
    assert [len(_xs(line)) for line in chart.findall(f"{SVG}polyline")] == [10]
    assert not [rect for rect in chart.iter(f"{SVG}rect") if rect.get("class") == "gap"]


def test_a_lone_window_between_gaps_is_a_dot():
    chart = _chart([0, 1, 5, 9, 10])
    assert [len(_xs(line)) for line in chart.findall(f"{SVG}polyline")] == [2, 2]
    dots = chart.findall(f"{SVG}circle")
    assert len(dots) == 1  # minute 5, a run of one: drawn as a point, not lost
    assert len([rect for rect in chart.iter(f"{SVG}rect") if rect.get("class") == "gap"]) == 2
