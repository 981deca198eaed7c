"""The one exception family a user sees: its message is a single actionable line."""


class CryptoAssetsError(Exception):
    """A failure the user can act on; the CLI prints its message alone, without a traceback."""
