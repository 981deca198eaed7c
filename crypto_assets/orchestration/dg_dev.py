"""`make ui`'s `dg dev`, which SIGINT and SIGTERM stop also when started in the background.

`dg dev` is how Dagster 1.13's documentation starts a project locally (`dagster dev` still works
and prints a `SupersessionWarning` pointing to it); it reads the project from `[tool.dg]` in
pyproject.toml and runs the webserver, the daemon and the code server.

A non-interactive shell starts a background job (`make ui &` in a script, a CI step) with SIGINT
ignored, and an ignored signal stays ignored across exec. Python then installs no
KeyboardInterrupt handler, and Dagster's dev command (1.13: `setup_interrupt_handlers`) gives
SIGTERM whatever SIGINT has: it ignored both, and its webserver, daemon and code servers ran on
until killed. No code of this project is involved: nothing here sets a signal disposition at
import time. A shell cannot undo an ignore it inherited (POSIX), so this module does: it restores
the default of SIGINT (and of SIGTERM), then becomes `dg dev`, whose services inherit that
default.

    python -m crypto_assets.orchestration.dg_dev -h 127.0.0.1 -p 3000
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path


def exec_dg_dev(args: Sequence[str]) -> None:
    """Replace this process by `dg dev ARGS` (this environment's `dg`), SIGINT/SIGTERM default."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    dg = Path(sys.executable).with_name("dg")
    os.execv(sys.executable, [sys.executable, str(dg), "dev", *args])


if __name__ == "__main__":
    exec_dg_dev(sys.argv[1:])
