"""`make ui`'s `dagster dev`, which SIGINT and SIGTERM stop also when started in the background.

A non-interactive shell starts a background job (`make ui &` in a script, a CI step) with SIGINT
ignored, and an ignored signal stays ignored across exec. Python then installs no
KeyboardInterrupt handler, and `dagster dev` (1.13: `setup_interrupt_handlers` in
`dagster._cli.dev`) gives SIGTERM whatever SIGINT has: it ignored both, and its webserver, daemon
and code servers ran on until killed. No code of this project is involved: nothing here sets a
signal disposition at import time. A shell cannot undo an ignore it inherited (POSIX), so this
module does: it restores the default of SIGINT (and of SIGTERM), then becomes `dagster dev`,
whose services inherit that default.

    python -m crypto_assets.orchestration.dagster_dev -h 127.0.0.1 -p 3000
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence


def exec_dagster_dev(args: Sequence[str]) -> None:
    """Replace this process by `dagster dev ARGS` (this interpreter's), SIGINT/SIGTERM default."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    os.execv(sys.executable, [sys.executable, "-m", "dagster", "dev", *args])


if __name__ == "__main__":
    exec_dagster_dev(sys.argv[1:])
