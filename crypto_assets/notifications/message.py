"""`Notification`: one alert for people, as a JSON payload, a line of text and a stable key."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

# The price_alerts columns a market notification is built from (detected_time is optional).
MARKET_COLUMNS = (
    "alert_type",
    "symbol",
    "window_start",
    "window_end",
    "metric_value",
    "threshold",
    "message",
)
_UTC_MICROS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Notification:
    """One alert: `key` identifies it for de-duplication (by the ledger and by the receiver),
    `payload` is the JSON object a webhook receives, `text` the one line Slack shows (mrkdwn:
    ``&<>`` escaped, the run as a ``<url|run>`` link)."""

    key: str
    payload: dict[str, object]
    text: str

    @classmethod
    def market_alerts(cls, rows: pa.Table, run_url: str | None = None) -> list[Notification]:
        """One notification per price_alerts row, in row order.

        Timestamps are UTC: a tz-naive column is read as UTC, a tz-aware one converted. The key
        is ``symbol|window_start|alert_type``, so the same alert found again (a batch re-run)
        has the same key. The payload holds the row's columns (times as ISO 8601 with ``Z``,
        detected_time None when the table has no such column or the row none), ``kind:
        "market"``, and ``run_url`` only when given.
        """
        missing = [name for name in MARKET_COLUMNS if name not in rows.column_names]
        if missing:
            raise ValueError(f"price_alerts rows lack the column(s) {', '.join(missing)}")
        columns = {name: _python_values(rows.column(name)) for name in MARKET_COLUMNS}
        detected = (
            _python_values(rows.column("detected_time"))
            if "detected_time" in rows.column_names
            else [None] * rows.num_rows
        )
        notifications = []
        for index in range(rows.num_rows):
            row = {name: values[index] for name, values in columns.items()}
            window_start = _utc_iso(row["window_start"])
            key = f"{row['symbol']}|{window_start}|{row['alert_type']}"
            payload: dict[str, object] = {
                "key": key,
                "kind": "market",
                "alert_type": row["alert_type"],
                "symbol": row["symbol"],
                "window_start": window_start,
                "window_end": _utc_iso(row["window_end"]),
                "metric_value": _finite(row["metric_value"]),
                "threshold": _finite(row["threshold"]),
                "message": row["message"],
                "detected_time": _utc_iso(detected[index]),
            }
            if run_url is not None:
                payload["run_url"] = run_url
            text = f"[{row['alert_type']}] {_slack_line(str(row['message']))}"
            notifications.append(cls(key, payload, _with_link(text, run_url)))
        return notifications

    @classmethod
    def operational(
        cls,
        kind: str,
        subject: str,
        message: str,
        metadata: Mapping[str, object],
        *,
        key: str,
        run_url: str | None = None,
    ) -> Notification:
        """A notification about the pipeline itself: a failed run, a failing check.

        `kind` names what happened (``"run_failure"``), `subject` what it happened to (a job,
        an asset), `metadata` JSON-ready details, `key` a stable id chosen by the caller (the
        run id, say) so that reporting the same event twice notifies once.
        """
        payload: dict[str, object] = {
            "key": key,
            "kind": kind,
            "subject": subject,
            "message": message,
            "metadata": dict(metadata),
            "run_url": run_url,
        }
        text = f"[{kind}] {_slack_line(subject)}: {_slack_line(message)}"
        return cls(key, payload, _with_link(text, run_url))


def _python_values(column: pa.ChunkedArray) -> list[object]:
    """The column as Python values; timestamps as aware UTC datetimes (tz-naive read as UTC)."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(_UTC_MICROS, safe=False)  # nanoseconds truncated to microseconds
    return column.to_pylist()


def _utc_iso(value: object) -> str | None:
    """``2024-08-08T23:55:00Z`` (microseconds only when not zero); None stays None."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp, got {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def _finite(value: object) -> object:
    """`value`, or None for NaN and infinities (which JSON cannot hold)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _slack_line(text: str) -> str:
    """`text` on one line, with the three characters Slack's mrkdwn reserves escaped."""
    one_line = " ".join(text.split())
    return one_line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _with_link(text: str, run_url: str | None) -> str:
    """`text`, then a Slack link to the run when there is one."""
    return text if run_url is None else f"{text} <{run_url}|run>"
