"""Notification payloads and keys, from a hand-built price_alerts table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa

from crypto_assets.notifications.message import Notification

PLUS_TWO = timezone(timedelta(hours=2))


def price_alerts(unit: str = "us", tz: str | None = None) -> pa.Table:
    """Two price_alerts rows as the analytics write them (times in UTC)."""
    stamp = pa.timestamp(unit, tz=tz)
    aware = tz is not None

    def at(hour: int, minute: int, second: int = 0, micros: int = 0) -> datetime:
        value = datetime(2024, 8, 8, hour, minute, second, micros, tzinfo=UTC)
        return value if aware else value.replace(tzinfo=None)

    return pa.table(
        {
            "alert_type": ["PRICE_MOVE", "VOLUME_SPIKE"],
            "symbol": ["BTCUSDT", "ETHUSDT"],
            "window_start": pa.array([at(23, 55), at(23, 56)], stamp),
            "window_end": pa.array([at(23, 56), at(23, 57)], stamp),
            "metric_value": [-0.612, 410.0],
            "threshold": [0.5, float("nan")],
            "message": ["BTCUSDT price moved -0.612%\nin the window", "ETHUSDT had 410 trades"],
            "detected_time": pa.array([at(23, 56, 2, 250000), None], stamp),
        }
    )


def test_market_payloads_hold_the_row_in_utc_iso_and_a_stable_key() -> None:
    notifications = Notification.market_alerts(price_alerts(), run_url="http://dagster/runs/r1")
    assert [n.payload for n in notifications] == [
        {
            "key": "BTCUSDT|2024-08-08T23:55:00Z|PRICE_MOVE",
            "kind": "market",
            "alert_type": "PRICE_MOVE",
            "symbol": "BTCUSDT",
            "window_start": "2024-08-08T23:55:00Z",
            "window_end": "2024-08-08T23:56:00Z",
            "metric_value": -0.612,
            "threshold": 0.5,
            "message": "BTCUSDT price moved -0.612%\nin the window",
            "detected_time": "2024-08-08T23:56:02.250000Z",
            "run_url": "http://dagster/runs/r1",
        },
        {
            "key": "ETHUSDT|2024-08-08T23:56:00Z|VOLUME_SPIKE",
            "kind": "market",
            "alert_type": "VOLUME_SPIKE",
            "symbol": "ETHUSDT",
            "window_start": "2024-08-08T23:56:00Z",
            "window_end": "2024-08-08T23:57:00Z",
            "metric_value": 410.0,
            "threshold": None,  # NaN is no JSON
            "message": "ETHUSDT had 410 trades",
            "detected_time": None,
            "run_url": "http://dagster/runs/r1",
        },
    ]
    assert [n.key for n in notifications] == [
        "BTCUSDT|2024-08-08T23:55:00Z|PRICE_MOVE",
        "ETHUSDT|2024-08-08T23:56:00Z|VOLUME_SPIKE",
    ]
    assert notifications[0].text == (
        "[PRICE_MOVE] BTCUSDT price moved -0.612% in the window <http://dagster/runs/r1|run>"
    )


def test_keys_do_not_depend_on_the_time_zone_unit_or_detection_time() -> None:
    naive = Notification.market_alerts(price_alerts("us"))
    aware = Notification.market_alerts(price_alerts("ns", tz="UTC"))
    redetected = price_alerts().set_column(
        7, "detected_time", pa.array([datetime(2025, 1, 1), None], pa.timestamp("us"))
    )
    assert [n.key for n in aware] == [n.key for n in naive]
    assert [n.key for n in Notification.market_alerts(redetected)] == [n.key for n in naive]
    assert aware[0].payload["detected_time"] == "2024-08-08T23:56:02.250000Z"
    assert "run_url" not in naive[0].payload


def test_a_tz_aware_column_in_another_zone_is_converted_to_utc() -> None:
    table = price_alerts().set_column(
        2,
        "window_start",
        pa.array(
            [datetime(2024, 8, 9, 3, 55, tzinfo=PLUS_TWO)] * 2, pa.timestamp("s", tz="+02:00")
        ),
    )
    assert Notification.market_alerts(table)[0].payload["window_start"] == "2024-08-09T01:55:00Z"


def test_operational_payload_and_text() -> None:
    n = Notification.operational(
        "run_failure",
        "analytics_job",
        "step <analytics> failed & stopped",
        {"step": "analytics", "attempt": 2},
        key="run-1234",
        run_url="http://dagster/runs/1234",
    )
    assert n.key == "run-1234"
    assert n.payload == {
        "key": "run-1234",
        "kind": "run_failure",
        "subject": "analytics_job",
        "message": "step <analytics> failed & stopped",
        "metadata": {"step": "analytics", "attempt": 2},
        "run_url": "http://dagster/runs/1234",
    }
    assert n.text == (
        "[run_failure] analytics_job: step &lt;analytics&gt; failed &amp; stopped "
        "<http://dagster/runs/1234|run>"
    )
