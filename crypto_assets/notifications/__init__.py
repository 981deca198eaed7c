"""Alerts for people, delivered exactly once: a durable outbox, a webhook and Slack.

The process that finds alerts stages and releases them in an `Outbox` folder; a `Deliverer`
sends what is released on every channel, records each send in a ledger beside it, and retries a
failing channel with backoff, so nothing released is lost or sent twice (except the one send a
crash interrupts before its record, which is repeated and counted).
"""
