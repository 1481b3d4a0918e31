"""How the operator commands (`replay`, `dlq`) report failure: UsageError for a bad command
line (exit code 2), and error_text for a one-line message about an unexpected error."""

from __future__ import annotations


class UsageError(Exception):
    """A bad command line (exit code 2)."""


def error_text(e: BaseException) -> str:
    text = str(e)
    return text if type(e).__name__ in text else f"{type(e).__name__}: {text}"
