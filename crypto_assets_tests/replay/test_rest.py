"""REST historicalTrades against a real server, compared with the recording read by the test."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from crypto_assets_tests.replay.ws_client import stream_client

TRADES = "btcusdt@trade/ethusdt@trade"


def get(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def expected_rest(trade: dict) -> dict:
    """What Binance's historicalTrades says of a trade-stream payload."""
    quote = (Decimal(trade["p"]) * Decimal(trade["q"])).quantize(Decimal("0.00000001"))
    return {
        "id": trade["t"],
        "price": trade["p"],
        "qty": trade["q"],
        "quoteQty": f"{quote:f}",
        "time": trade["T"],
        "isBuyerMaker": trade["m"],
        "isBestMatch": trade["M"],
    }


def consume_all(server, count: int) -> list[str]:
    """Let the market publish everything by reading the whole stream."""
    with stream_client(f"{server.url}/stream?streams={TRADES}") as ws:
        return [ws.recv(timeout=10) for _ in range(count)]


def btc(recorded_trades: list[dict]) -> list[dict]:
    return [trade for trade in recorded_trades if trade["s"] == "BTCUSDT"]


def test_from_id_and_limit_return_the_recorded_trades(
    replay_server_factory, recorded_trades: list[dict]
) -> None:
    server = replay_server_factory()
    consume_all(server, len(recorded_trades))
    recorded = btc(recorded_trades)
    from_id = recorded[1234]["t"]

    status, body = get(
        f"{server.rest_url}/api/v3/historicalTrades?symbol=BTCUSDT&fromId={from_id}&limit=1000"
    )

    assert status == 200
    assert body == [expected_rest(trade) for trade in recorded[1234:2234]]


def test_default_limit_is_500_and_no_from_id_means_latest(
    replay_server_factory, recorded_trades: list[dict]
) -> None:
    server = replay_server_factory()
    consume_all(server, len(recorded_trades))
    recorded = btc(recorded_trades)

    status, latest = get(f"{server.rest_url}/api/v3/historicalTrades?symbol=BTCUSDT")
    _, oldest = get(f"{server.rest_url}/api/v3/historicalTrades?symbol=BTCUSDT&fromId=0&limit=3")

    assert status == 200
    assert latest == [expected_rest(trade) for trade in recorded[-500:]]
    assert oldest == [expected_rest(trade) for trade in recorded[:3]]


def test_only_published_trades_are_served(replay_server_factory, recorded_trades) -> None:
    server = replay_server_factory()

    _, before = get(f"{server.rest_url}/api/v3/historicalTrades?symbol=ETHUSDT&fromId=0")
    consume_all(server, 10)
    time.sleep(0.2)
    published = server.stats.market.trades_published
    _, after = get(f"{server.rest_url}/api/v3/historicalTrades?symbol=ETHUSDT&fromId=0&limit=1000")

    assert before == []
    eth_published = [t for t in recorded_trades[:published] if t["s"] == "ETHUSDT"]
    assert after == [expected_rest(trade) for trade in eth_published[:1000]]


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        ("symbol=DOGEUSDT", -1121, "Invalid symbol."),
        ("", -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."),
        ("symbol=btcusdt", -1100, "Illegal characters found in parameter 'symbol'"),
        ("symbol=BTCUSDT&limit=abc", -1100, "Illegal characters found in parameter 'limit'"),
        ("symbol=BTCUSDT&limit=1001", -1130, "Data sent for parameter 'limit' is not valid."),
        ("symbol=BTCUSDT&limit=0", -1130, "Data sent for parameter 'limit' is not valid."),
        ("symbol=BTCUSDT&fromId=-5", -1100, "Illegal characters found in parameter 'fromId'"),
    ],
)
def test_errors_are_binance_errors(replay_server_factory, query: str, code: int, message: str):
    server = replay_server_factory()

    status, body = get(f"{server.rest_url}/api/v3/historicalTrades?{query}")

    assert status == 400
    assert body["code"] == code
    assert body["msg"].startswith(message)


def test_ping(replay_server_factory) -> None:
    server = replay_server_factory()

    assert get(f"{server.rest_url}/api/v3/ping") == (200, {})


def test_withheld_trades_are_missing_from_the_stream_but_served_by_rest(
    replay_server_factory, recorded_trades: list[dict]
) -> None:
    server = replay_server_factory(gap_every=100)
    sent = len(recorded_trades) - len(recorded_trades) // 100

    frames = [json.loads(frame)["data"] for frame in consume_all(server, sent)]

    withheld = recorded_trades[99::100]
    assert frames == [t for i, t in enumerate(recorded_trades, 1) if i % 100]
    assert server.stats.market.trades_withheld == len(withheld)
    for trade in withheld[:5]:
        _, body = get(
            f"{server.rest_url}/api/v3/historicalTrades?symbol={trade['s']}&fromId={trade['t']}"
            "&limit=1"
        )
        assert body == [expected_rest(trade)]


def test_corrupted_trades_are_malformed_in_varied_ways_and_served_by_rest(
    replay_server_factory, recorded_trades: list[dict]
) -> None:
    server = replay_server_factory(corrupt_every=50)

    frames = consume_all(server, 400)

    kinds = set()
    for index, frame in enumerate(frames, 1):
        recorded = recorded_trades[index - 1]
        if index % 50:
            assert json.loads(frame)["data"] == recorded
            continue
        try:
            data = json.loads(frame)["data"]
        except json.JSONDecodeError:
            kinds.add("truncated JSON")
            continue
        assert data != recorded
        if "q" not in data:
            kinds.add("missing quantity")
        else:
            try:
                price = float(data["p"])
            except ValueError:
                kinds.add("non-numeric price")
            else:
                assert price <= 0
                kinds.add("non-positive price")
        _, body = get(
            f"{server.rest_url}/api/v3/historicalTrades?symbol={recorded['s']}"
            f"&fromId={recorded['t']}&limit=1"
        )
        assert body == [expected_rest(recorded)]
    assert kinds == {
        "truncated JSON",
        "missing quantity",
        "non-numeric price",
        "non-positive price",
    }


def test_rest_knows_the_trades_of_later_laps(
    replay_server_factory, small_recording, recorded_trades: list[dict]
) -> None:
    server = replay_server_factory(recordings=(small_recording,), loop=True)
    with stream_client(f"{server.url}/ws/btcusdt@trade") as ws:
        streamed = [json.loads(ws.recv(timeout=5)) for _ in range(500)]
    lap_trade = streamed[300]

    _, body = get(
        f"{server.rest_url}/api/v3/historicalTrades?symbol=BTCUSDT&fromId={lap_trade['t']}&limit=1"
    )

    assert body == [expected_rest(lap_trade)]
    assert lap_trade["t"] > max(t["t"] for t in recorded_trades[:400] if t["s"] == "BTCUSDT")


def test_rest_serves_only_the_laps_a_first_lap_server_published(
    replay_server_factory, small_recording, recorded_trades: list[dict]
) -> None:
    recorded = [t for t in recorded_trades[:400] if t["s"] == "BTCUSDT"]
    span = recorded[-1]["t"] - recorded[0]["t"] + 1  # the small recording's ids are contiguous
    lap_2 = [{**t, "t": t["t"] + 2 * span} for t in recorded]
    server = replay_server_factory(recordings=(small_recording,), first_lap=2)
    query = f"{server.rest_url}/api/v3/historicalTrades?symbol=BTCUSDT"

    _, before = get(f"{query}&fromId=0")
    with stream_client(f"{server.url}/ws/btcusdt@trade") as ws:
        streamed = [json.loads(ws.recv(timeout=5)) for _ in range(len(recorded))]
    _, from_zero = get(f"{query}&fromId=0&limit=5")
    _, from_lap_1 = get(f"{query}&fromId={recorded[10]['t'] + span}&limit=5")
    _, from_lap_2 = get(f"{query}&fromId={lap_2[10]['t']}&limit=5")
    _, latest = get(f"{query}&limit=5")

    assert before == []
    assert [t["t"] for t in streamed] == [t["t"] for t in lap_2]
    rows = [expected_rest(t) for t in streamed]
    assert from_zero == rows[:5]
    assert from_lap_1 == rows[:5]  # lap 1 was never published: served from lap 2's start
    assert from_lap_2 == rows[10:15]
    assert latest == rows[-5:]


def test_exchange_info_lists_the_symbols_the_recording_carries(
    replay_server_factory, recorded_trades
) -> None:
    server = replay_server_factory()
    carried = sorted({trade["s"] for trade in recorded_trades})
    status, body = get(f"{server.rest_url}/api/v3/exchangeInfo")
    assert status == 200
    assert body["timezone"] == "UTC"
    assert abs(body["serverTime"] - time.time() * 1000) < 60_000
    assert [s["symbol"] for s in body["symbols"]] == carried == ["BTCUSDT", "ETHUSDT"]
    btc = body["symbols"][0]
    assert (btc["status"], btc["baseAsset"], btc["quoteAsset"]) == ("TRADING", "BTC", "USDT")


def test_exchange_info_for_named_symbols(replay_server_factory) -> None:
    server = replay_server_factory()
    # Binance's own form: a JSON array, here URL-encoded and (curl -g style) plain.
    for query in ("symbols=%5B%22ETHUSDT%22%5D", 'symbols=["ETHUSDT"]', "symbol=ETHUSDT"):
        status, body = get(f"{server.rest_url}/api/v3/exchangeInfo?{query}")
        assert status == 200, query
        assert [s["symbol"] for s in body["symbols"]] == ["ETHUSDT"]


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        ('symbols=["BTCUSDT","BNBUSDT"]', -1121, "Invalid symbol."),
        ("symbol=XRPUSDT", -1121, "Invalid symbol."),
        ("symbols=BTCUSDT", -1100, "Illegal characters found in parameter 'symbols'"),
        ("symbols=[]", -1100, "Illegal characters found in parameter 'symbols'"),
        ('symbol=BTCUSDT&symbols=["BTCUSDT"]', -1128, "Combination of optional parameters"),
        ("symbol=btc-usdt!", -1100, "Illegal characters found in parameter 'symbol'"),
    ],
)
def test_exchange_info_errors_are_binance_errors(replay_server_factory, query, code, message):
    server = replay_server_factory()
    encoded = query.replace('"', "%22")
    status, body = get(f"{server.rest_url}/api/v3/exchangeInfo?{encoded}")
    assert status == 400
    assert body["code"] == code
    assert body["msg"].startswith(message)


def test_a_market_opening_mid_lap_serves_its_history_once_open_times_before_now(
    replay_server_factory, small_recording, recorded_trades: list[dict]
) -> None:
    recorded = [t for t in recorded_trades[:400] if t["s"] == "BTCUSDT"]
    span = recorded[-1]["t"] - recorded[0]["t"] + 1
    opening = next(i for i, t in enumerate(recorded_trades[:400]) if t["t"] == recorded[100]["t"])
    server = replay_server_factory(
        recordings=(small_recording,),
        speed=1.0,
        rebase_time=True,
        first_lap=1,
        first_event=opening,
        history_from={"BTCUSDT": recorded[40]["t"] + span},
    )
    query = f"{server.rest_url}/api/v3/historicalTrades?symbol=BTCUSDT"

    _, before_open = get(f"{query}&fromId=0")
    with stream_client(f"{server.url}/ws/btcusdt@trade") as ws:
        first = json.loads(ws.recv(timeout=5))
    opened_ms = time.time() * 1000
    _, history = get(f"{query}&fromId=0&limit=1000")

    assert before_open == []  # the times of the market's past are set when it opens
    assert first["t"] == recorded[100]["t"] + span
    assert abs(first["T"] - opened_ms) < 5_000
    served = [row["id"] for row in history]
    assert served[:60] == [t["t"] + span for t in recorded[40:100]]  # the past, then the streamed
    assert [row["price"] for row in history[:60]] == [t["p"] for t in recorded[40:100]]
    assert all(row["time"] <= first["T"] for row in history[:60])
    assert history[0]["time"] < first["T"]
