"""The `streamproc-force` record header, streamproc's own: set to 1 on a re-produced sink record
to make the delivery ledger send its id again; dropped from every other record put back."""

from __future__ import annotations

from typing import Iterable

FORCE_HEADER = "streamproc-force"


def replay_headers(headers: Iterable[tuple[str, bytes]] | None, force: bool,
                   ) -> list[tuple[str, bytes]]:
    """The record's headers without streamproc-force, plus streamproc-force: 1 when forced."""
    out = [(k, v) for k, v in (headers or ()) if k != FORCE_HEADER]
    if force:
        out.append((FORCE_HEADER, b"1"))
    return out


def is_forced(headers: Iterable[tuple[str, bytes]] | None) -> bool:
    """Whether a record carries streamproc-force: 1."""
    return any(k == FORCE_HEADER and v == b"1" for k, v in (headers or ()))
