"""The delivery side of the outcome records (streamproc/worker/outcomes.py): a `try` per record
per HTTP attempt, a `dead` per dead-lettered record, a `seen` per record the ledger had
delivered, and the status page's latest failures per destination."""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterable

from streamproc.core.errors import AuthError, Permanent

if TYPE_CHECKING:
    from streamproc.worker.output import Out

FAILURES_KEPT = 20  # per destination, for the status page


class TryOutcomes:
    """Outcomes' delivery-side methods (a mixin: Outcomes has scrub, failures and pack)."""

    scrub: Callable[[str], str]
    failures: dict[str, deque[dict[str, Any]]]
    pack: Callable[..., list[Out]]

    def attempt_outs(self, dest: str, request: Any, status: int | None, body: str,
                     items: list[tuple[Any, int, Any]]) -> list[dict[str, Any]]:
        """`try` outcomes of one HTTP request (Deliverer's on_attempt): one per record it
        carried, with its attempt number and result; failures also go to the status page's
        recent-failures list."""
        now = round(time.time(), 3)
        excerpt = None
        out = []
        for record, attempt, error in items:
            mid = record.source.get("message_id")
            if not mid:
                continue
            result = ("ok" if error is None else "auth" if isinstance(error, AuthError)
                      else "failed" if isinstance(error, Permanent) else "retry")
            doc = {"k": "try", "m": mid, "t": now, "d": dest, "id": record.id, "op": record.op,
                   "req": request.kind, "n": attempt, "s": status, "r": result}
            if error is not None:
                if excerpt is None:
                    excerpt = self.scrub(body)
                doc["b"] = excerpt
                doc["err"] = self.scrub(str(error))[:200]
                ring = self.failures.get(dest)
                if ring is None:
                    ring = self.failures[dest] = deque(maxlen=FAILURES_KEPT)
                ring.appendleft(doc)
            out.append(doc)
        return out

    def dead_outs(self, dest: str, dead: Iterable[Any]) -> list[dict[str, Any]]:
        now = round(time.time(), 3)
        return [{"k": "dead", "m": d.record.source["message_id"], "t": now,
                 "stage": "delivery", "d": dest, "id": d.record.id, "r": d.reason,
                 "s": d.status, "n": d.attempts}
                for d in dead if d.record.source.get("message_id")]

    def seen_outs(self, dest: str, records: Iterable[Any]) -> list[dict[str, Any]]:
        now = round(time.time(), 3)
        return [{"k": "seen", "m": r.source["message_id"], "t": now, "d": dest, "id": r.id}
                for r in records if r.source.get("message_id")]

    def recent_failures(self, dest: str) -> list[dict[str, Any]]:
        return list(self.failures.get(dest, ()))


class AttemptRecorder:
    """Deliverer's on_attempt for one destination: collects the `try` outcomes of a batch;
    deliver_batch takes them and produces them with the batch's dead letters."""

    def __init__(self, outcomes: TryOutcomes, dest: str) -> None:
        self.outcomes, self.dest = outcomes, dest
        self.pending: list[dict[str, Any]] = []

    def __call__(self, request: Any, status: int | None, body: str,
                 items: list[tuple[Any, int, Any]]) -> None:
        self.pending += self.outcomes.attempt_outs(self.dest, request, status, body, items)

    def take(self, dead: Iterable[Any] = (), already: Iterable[Any] = ()) -> list[Out]:
        """The batch's `try` outcomes, its `dead` ones, and a `seen` one per record the
        ledger had delivered before (not sent again: a replay or a batch read again), so its
        trace says delivered, not routed."""
        docs, self.pending = self.pending, []
        docs += self.outcomes.dead_outs(self.dest, dead)
        docs += self.outcomes.seen_outs(self.dest, already)
        return self.outcomes.pack(docs) if docs else []
