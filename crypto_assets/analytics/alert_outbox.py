"""How a batch hands the alerts it adds to price_alerts to the notifications, exactly once.

A batch stages the alerts it is about to add before the commit that adds them and releases them
after it, so the alerts of a batch that never commits are never sent and those of one that did
are never lost:
- re-run after a crash between its last commit and the release, the batch finds its commit
  applied and releases what its first attempt staged;
- re-run after a crash between two of its commits, it stages again, adding to what the first
  attempt staged (the alerts an earlier piece committed no longer look new to the re-run).

The process that runs the query sends what is released (`notifications.Deliverer`); its ledger
keeps an alert removed and found again (a window revised twice) from going out twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from crypto_assets.analytics.ports import BatchTag
from crypto_assets.notifications.message import Notification
from crypto_assets.notifications.outbox import Outbox


@dataclass(frozen=True)
class AlertOutbox:
    """The outbox folder of a query's alerts, and the link to the run that finds them.

    Plain data, so it travels with the batch function to a Spark Connect server.
    """

    folder: Path
    run_url: str | None = None

    def stage(self, tag: BatchTag, new_alerts: pa.Table) -> None:
        """Stage price_alerts rows the batch `tag` is about to add (kept until `release`)."""
        if new_alerts.num_rows:
            notifications = Notification.market_alerts(new_alerts, self.run_url)
            Outbox(self.folder).stage_more(entry_name(tag), notifications)

    def release(self, tag: BatchTag) -> None:
        """The batch `tag` committed its alerts: what it staged may go out."""
        Outbox(self.folder).release(entry_name(tag))


def entry_name(tag: BatchTag) -> str:
    """The outbox entry of a batch: ``<query name>-<query id>_<batch id>`` (a file name)."""
    return f"{tag.app_id.replace(':', '-')}_{tag.batch_id}"
