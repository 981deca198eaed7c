"""The local deployment's tests use the orchestration tests' settings (data dir in tmp_path)."""

from crypto_assets_tests.orchestration.conftest import settings

__all__ = ["settings"]
