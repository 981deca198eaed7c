"""``crypto-assets replay-server``: serve a recording like Binance until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from crypto_assets.replay.server import ReplayOptions, ReplayServer


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``replay-server`` sub-command."""
    parser = subparsers.add_parser(
        "replay-server",
        help="serve recorded Binance frames over websocket + REST",
        description=(
            "Replay recorded Binance frames (<receive ns> <frame json> lines, gzip) like "
            "stream.binance.com: /stream?streams=.., /ws/<stream>, and REST "
            "/api/v3/historicalTrades on the same host and port."
        ),
    )
    parser.add_argument(
        "--recording",
        action="append",
        required=True,
        type=Path,
        metavar="FILE",
        help="recording file; repeat to merge several by receive time",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        metavar="X|max",
        help="replay speed factor, or max: as fast as subscribers take frames (default 1)",
    )
    parser.add_argument("--loop", action="store_true", help="restart the recording at its end")
    parser.add_argument(
        "--rebase-time", action="store_true", help="shift E/T so the first trade is now"
    )
    parser.add_argument(
        "--clock-time",
        action="store_true",
        help="every E/T is the wall clock when sent (rebased, divided by --speed)",
    )
    parser.add_argument(
        "--drop-after", type=int, metavar="N", help="abort connections after N frames"
    )
    parser.add_argument(
        "--shutdown-after",
        type=int,
        metavar="N",
        help="send serverShutdown after N frames per connection, then close",
    )
    parser.add_argument(
        "--shutdown-grace", type=float, default=1.0, metavar="S", help="seconds before that close"
    )
    parser.add_argument(
        "--corrupt-every", type=int, metavar="N", help="send every Nth trade malformed"
    )
    parser.add_argument(
        "--gap-every", type=int, metavar="N", help="withhold every Nth trade (REST serves it)"
    )
    parser.add_argument(
        "--first-lap",
        type=int,
        default=0,
        metavar="N",
        help="start at lap N, as --loop would publish it: ids + N*span, times + N laps (default 0)",
    )
    parser.add_argument("--ping-interval", type=float, default=20.0, metavar="S")
    parser.add_argument("--pong-timeout", type=float, default=60.0, metavar="S")
    parser.add_argument(
        "--max-connection-age",
        type=float,
        metavar="S",
        help="close each connection after S seconds (Binance: 24 h)",
    )
    parser.set_defaults(func=run_replay_server)


def _speed(text: str) -> float | None:
    if text.lower() == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or max, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"speed must be positive, got {text}")
    return value


def run_replay_server(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; print ``listening on ws://H:N`` once accepting."""
    options = ReplayOptions(
        recordings=tuple(args.recording),
        host=args.host,
        port=args.port,
        speed=args.speed,
        loop=args.loop,
        rebase_time=args.rebase_time,
        drop_after=args.drop_after,
        shutdown_after=args.shutdown_after,
        shutdown_grace=args.shutdown_grace,
        corrupt_every=args.corrupt_every,
        gap_every=args.gap_every,
        ping_interval=args.ping_interval,
        pong_timeout=args.pong_timeout,
        max_connection_age=args.max_connection_age,
        first_lap=args.first_lap,
        clock_time=args.clock_time,
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = ReplayServer(options)
    server.start()
    print(f"listening on {server.url}", flush=True)
    server.serve_until_stopped(stop)
    return 0
