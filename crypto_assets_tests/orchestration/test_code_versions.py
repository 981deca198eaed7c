"""The assets' code versions digest every module that decides what the asset holds."""

from __future__ import annotations

from crypto_assets.orchestration.code_versions import ANALYTICS_MODULES, PRODUCER_MODULES
from crypto_assets_tests.test_layers import PACKAGE, package_imports

# What the query imports that does not decide the tables' content: how Spark is started, where
# the jars come from, the checkpoint's lock and logs, the archive of processed files, compaction,
# errors, where the tables and folders are, how files are written, how alerts reach people.
ANALYTICS_MECHANICS = {
    "analytics/alert_outbox.py",
    "backoff.py",
    "durable_files.py",
    "local/file_source_log.py",
    "notifications/channels.py",
    "notifications/deliverer.py",
    "notifications/message.py",
    "notifications/outbox.py",
    "databricks/layout.py",
    "producer/producer_files.py",
    "analytics/checkpoint_lock.py",
    "analytics/delta_jars.py",
    "analytics/java_runtime.py",
    "analytics/landing_retention.py",
    "analytics/maintenance.py",
    "analytics/spark_session.py",
    "errors.py",
    "folder_lock.py",
    "landing_files.py",
    "settings.py",
}
# What the producer imports that does not decide a landing line: transport, files, state, locks.
PRODUCER_MECHANICS = {
    "durable_files.py",
    "binance/rest_client.py",
    "binance/stream_client.py",
    "errors.py",
    "folder_lock.py",
    "landing_files.py",
    "producer/landing_target.py",
    "producer/producer_files.py",
    "producer/producer_state.py",
    "settings.py",
}


def reached(modules: tuple[str, ...]) -> set[str]:
    """The package's files `modules` import, directly or not, themselves included."""
    imports = package_imports()

    def file_of(module: str) -> str | None:
        relative = module.removeprefix("crypto_assets.").replace(".", "/")
        for candidate in (f"{relative}.py", f"{relative}/__init__.py"):
            if (PACKAGE / candidate).is_file():
                return candidate
        return None

    by_file = {file_of(name): targets for name, targets in imports.items()}
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for target in by_file.get(current, ()):
            path = file_of(target)
            if path and not path.endswith("__init__.py"):
                todo.append(path)
    return seen


def test_the_analytics_version_covers_what_the_query_imports() -> None:
    assert reached(ANALYTICS_MODULES) - ANALYTICS_MECHANICS == set(ANALYTICS_MODULES)


def test_the_producer_version_covers_what_the_producer_imports() -> None:
    assert reached(PRODUCER_MODULES) - PRODUCER_MECHANICS == set(PRODUCER_MODULES)
