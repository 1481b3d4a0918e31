"""The one error tree of streamproc. Who must act is in the class: the event (EventError,
dead-lettered), the configuration (ConfigError, fails at start) or nobody yet (Retryable)."""

from __future__ import annotations


class StreamprocError(Exception):
    """Base of every error streamproc raises on purpose."""


class ConfigError(StreamprocError):
    """A setting or topics.yaml is wrong. Raised at start; the message names the setting."""


class EventError(StreamprocError):
    """An input record cannot be used. It is dead-lettered with `reason` (a stable code)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class DeliveryError(StreamprocError):
    """A delivery attempt failed. `status` is the HTTP status (None for network errors)."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class Retryable(DeliveryError):
    """Transient: 408/423/429, 5xx except 501, network errors and timeouts."""


class Throttled(Retryable):
    """429 (or equivalent): wait `retry_after` seconds when the server said so."""

    def __init__(self, message: str, *, status: int | None = 429, body: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class AuthError(DeliveryError):
    """401/403: the destination is paused, its records kept, and probed again later."""


class Permanent(DeliveryError):
    """Other 4xx, 501, or a record the API rejected: dead-letter it, never retry."""
