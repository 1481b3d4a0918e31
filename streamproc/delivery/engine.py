"""The one delivery engine shared by all destinations: deliver() sends a batch of sink records
and returns when each is delivered, dead or held (outage pause); retries, per-key order, rate
limits, the auth pause and the outage pause (delivery/outage.py)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Callable

import httpx

from streamproc.delivery.backoff import FULL_JITTER, BackoffPolicy
from streamproc.delivery.client import send
from streamproc.delivery.ledger import Ledger
from streamproc.delivery.outage import Outage
from streamproc.delivery.progress import (HeldTries, Progress as _Progress, Round as _Round,
                                          keep, order_keys, resume, unseen)
from streamproc.delivery.ratelimit import SendGate
from streamproc.delivery.report import (RETRIES_EXHAUSTED, DeadRecord, DeliveryReport,
                                        map_records, reasoned)
from streamproc.core.errors import AuthError, DeliveryError, Permanent, Retryable, Throttled
from streamproc.core.metrics import Metrics, status_class
from streamproc.core.records import SinkRecord
from streamproc.destinations.outcomes import classify_status  # the shared retry rule
from streamproc.destinations.request import HttpRequest, RecordOutcome

log = logging.getLogger(__name__)
EXCERPT_CHARS = 2000
__all__ = ["Deliverer", "DeadRecord", "DeliveryReport", "RETRIES_EXHAUSTED"]


class Deliverer:
    """Delivers sink records to one destination module (NAME, build_requests, interpret, auth,
    optional repair) through an httpx client; see deliver()."""

    def __init__(self, destination: Any, settings: Any, client: httpx.AsyncClient,
                 ledger: Ledger | None, metrics: Metrics, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Any] = asyncio.sleep,
                 wall: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random, jitter: str = FULL_JITTER,
                 on_attempt: Callable[..., None] | None = None) -> None:
        self.destination, self.settings, self.client = destination, settings, client
        self.on_attempt = on_attempt  # (request, status, body, [(record, attempt, error)])
        self.ledger, self.metrics = ledger, metrics
        self.name: str = destination.NAME
        self.delivery = d = settings.delivery
        self._clock, self._sleep, self._wall, self._rng = clock, sleep, wall, rng
        self._repair = getattr(destination, "repair", None)
        self.gate = SendGate(rps=d.rate_limit_rps, concurrency=d.concurrency, clock=clock,
                             sleep=sleep)
        self.policy = BackoffPolicy(initial_s=d.backoff_initial_s, max_s=d.backoff_max_s,
                                    jitter=jitter, max_retry_after_s=d.max_retry_time_s,
                                    max_elapsed_s=d.max_retry_time_s)
        self.paused, self._paused_since, self._auth_probe_at = False, 0.0, 0.0  # on 401/403
        self._held: HeldTries = {}  # attempts of held records (progress.resume), kept
        self._held_s = 2 * d.retry_budget_s + 3600  # as long as a hold can last, and more
        metrics.auth_paused.labels(self.name).set(0)
        self.outage = Outage(self.name, d, metrics, clock=clock, wall=wall)

    def hold_s(self) -> float:
        """Seconds until the next probe of a paused destination (outage and/or 401/403)."""
        auth = max(0.0, self._auth_probe_at - self._clock()) if self.paused else 0.0
        return max(self.outage.wait_s() if self.outage.active else 0.0, auth)

    async def deliver(self, records: list[SinkRecord], *, force: bool = False) -> DeliveryReport:
        """Returns when every record is delivered, skipped (ledger), dead or held. Transient
        failures are retried within the call (MAX_ATTEMPTS, MAX_RETRY_TIME_S). Records still
        failing then are dead-lettered (retries_exhausted) if the API answered any request of
        the call for good (2xx, permanent 4xx); else the destination is paused (an outage):
        they and every record of a later call are returned as `report.held` (read again after
        outage.wait_s()), but one probe request per call once due. Past the retry budget
        (RETRY_BUDGET_S) a record is dead-lettered; once the outage's budget is spent each is
        sent once, dead-lettered if it fails. Paused on 401/403, records are held the same
        way, one probe per AUTH_PROBE_INTERVAL_S (hold_s()). Cancellable."""
        report = DeliveryReport()
        pending = unseen(records, None if force else self.ledger, report, self.name)
        progress = {r.id: _Progress(r) for r in pending}
        resume(progress, self._held, self._clock(), self._held_s)
        backoff = self.policy.start(rng=self._rng, clock=self._clock)
        outage, api_up = self.outage, False  # api_up: the API answered for good in this call
        while pending:
            draining = outage.active and outage.spent()  # each sent once, then dead-lettered
            if (outage.active and not draining and not outage.probe_due()) or \
                    (self.paused and self._clock() < self._auth_probe_at):
                report.held += [r.id for r in pending]
                break
            requests = self._build(pending, progress, report)
            state = _Round(probe_only=self.paused or (outage.active and not draining))
            await self._send_round(requests, state, progress, report)
            exhausted = {i for i in state.retry
                         if progress[i].counted >= self.delivery.max_attempts}
            retry, delay = state.retry - exhausted, None
            if retry and outage.active:  # paused meanwhile: no more retries within the call
                exhausted, retry = exhausted | retry, set()
            elif retry and not self.paused:
                delay = backoff.next_delay(state.retry_after)
                if delay is None:  # the call's retry time is spent
                    exhausted, retry = exhausted | retry, set()
            api_up = api_up or state.answered
            hold = self._hold_or_dead(exhausted, progress, report, api_up)
            if hold or (outage.active and not draining and outage.probe_due()):
                outage.pause(sum(not p.resolved for p in progress.values()))
            if (outage.active and not draining) or self.paused:
                if self.paused:  # still refused: the next probe after the interval
                    self._auth_probe_at = self._clock() + self.delivery.auth_probe_interval_s
                report.held += [r.id for r in pending if not progress[r.id].resolved]
                break
            for i in retry:
                self.metrics.retried.labels(self.name, status_class(progress[i].status)).inc()
            if delay is not None:
                log.warning("%s: %d record(s) failed (%s), retry %d in %.2fs",
                            self.name, len(retry), status_class(progress[next(iter(retry))].status),
                            backoff.retries, delay, extra={"destination": self.name})
                await self._sleep(delay)
            pending = [r for r in pending if r.id in retry or r.id in state.deferred]
        keep(report, progress, self._held, self._clock(), self._held_s)
        return report

    def _hold_or_dead(self, exhausted: set[str], progress: dict[str, _Progress],
                      report: DeliveryReport, api_up: bool) -> set[str]:
        """Call retries spent: dead if the API is up or past their budget, else returned (held)."""
        dead = exhausted if api_up else {i for i in exhausted if self.outage.spent(i)}
        for p in (progress[i] for i in dead):
            self._dead(p, p.error, report, reason=RETRIES_EXHAUSTED)
        self.outage.forget(dead)
        return exhausted - dead

    def _build(self, records: list[SinkRecord], progress: dict[str, _Progress],
               report: DeliveryReport) -> list[HttpRequest]:
        """Requests for the records; mapping failures and records no request carries are dead."""
        requests, failures = map_records(self.destination, self.settings, records, self.name)
        covered = {i for request in requests for i in request.record_ids}
        for record, error in failures:
            covered.add(record.id)
            if record.id in progress and not progress[record.id].resolved:
                self._dead(progress[record.id], error, report, reason="mapping_failed")
        for record in records:
            if record.id not in covered:
                error = Permanent("the mapping produced no request for this record")
                self._dead(progress[record.id], error, report, reason="mapping_dropped")
        return requests

    async def _send_round(self, requests: list[HttpRequest], state: _Round,
                          progress: dict[str, _Progress], report: DeliveryReport) -> None:
        """Send concurrently; requests sharing a record key wait for each other, in list order."""
        last_for_key: dict[str, asyncio.Event] = {}
        async with asyncio.TaskGroup() as tasks:
            for request in requests:
                keys = order_keys(request, progress)
                after = list({id(e): e for k in keys if (e := last_for_key.get(k))}.values())
                done = asyncio.Event()
                for key in keys:
                    last_for_key[key] = done
                tasks.create_task(self._in_order(request, keys, after, done, state, progress,
                                                 report))

    async def _in_order(self, request: HttpRequest, keys: set[str], after: list[asyncio.Event],
                        done: asyncio.Event, state: _Round, progress: dict[str, _Progress],
                        report: DeliveryReport) -> None:
        try:
            for event in after:
                await event.wait()
            if keys & state.blocked_keys:
                self._defer(request, state, progress)
            else:
                await self._attempt(request, state, progress, report, allow_repair=True)
        except Exception as exc:
            log.exception("%s: internal error delivering %s; will retry", self.name, request.kind)
            error = Retryable(f"internal error: {exc!r}")
            for record_id in self._live(request, progress):
                if record_id not in state.retry | state.deferred:
                    progress[record_id].counted += 1
                    self._retry_later(progress[record_id], error, state)
        finally:
            done.set()

    async def _attempt(self, request: HttpRequest, state: _Round, progress: dict[str, _Progress],
                       report: DeliveryReport, *, allow_repair: bool) -> None:
        """Send one request and settle each record it carries (or leave it for a later round)."""
        live = self._live(request, progress)
        if not live:
            return
        answer = await self._exchange(request, state)
        if answer is None:  # paused: not sent
            self._defer(request, state, progress)
            return
        status, body, outcomes = answer
        if self.paused and state.probe_only and status is None and all(
                isinstance(o.error, Retryable) for o in outcomes):  # no answer: nothing learned
            self._defer(request, state, progress)
            return
        now = self._wall()
        errors = {o.record_id: o.error for o in outcomes}
        for record_id in live:
            p = progress[record_id]
            p.attempts += 1
            p.first_at = p.first_at or now
            p.last_at, p.status, p.body = now, status, body[:EXCERPT_CHARS]
            if record_id not in errors:  # interpret said nothing: the status decides
                errors[record_id] = (None if status and 200 <= status < 300
                                     else Retryable(f"HTTP {status}: no outcome", status=status))
            if errors[record_id] is not None:
                self.metrics.failed.labels(self.name, status_class(status)).inc()
        if any(isinstance(errors[i], AuthError) for i in live):
            self._on_attempt(request, status, body, live, progress, errors)
            self._pause(request, status)
            self._defer(request, state, progress)
            return
        if state.probe_only:
            self._resume()
        answered = [i for i in live if not isinstance(errors[i], (Retryable, AuthError))]
        if answered:
            state.answered = True
            self.outage.answered(answered)
        self._delivered([i for i in live if errors[i] is None], progress, report, status)
        permanent = [i for i in live if isinstance(errors[i], Permanent)]
        repaired = await self._repaired(request, status, body) if permanent and allow_repair \
            else False
        kept: DeliveryError | None = None  # why a refused record is tried again later
        if isinstance(repaired, DeliveryError):
            kept = repaired
        elif repaired and self.paused:
            kept = Retryable("kept: the repair met 401/403 (paused)")
        self._on_attempt(request, status, body, live, progress,
                         {**errors, **{i: kept for i in permanent}} if kept else errors)
        if isinstance(repaired, DeliveryError):  # a fix failed transiently: try it all again
            for record_id in permanent:
                progress[record_id].counted += 1
                self._retry_later(progress[record_id], repaired, state)
            permanent = []
        elif repaired:
            if self.paused:  # a fix met 401/403: keep the records
                for record_id in permanent:
                    state.deferred.add(record_id)
                    state.blocked_keys |= progress[record_id].order_keys
            else:
                again = self._build([progress[i].record for i in permanent], progress, report)
                for retry_request in again:
                    await self._attempt(retry_request, state, progress, report,
                                        allow_repair=False)
            permanent = []
        for record_id in live:
            error, p = errors[record_id], progress[record_id]
            if record_id in permanent:
                fallback = f"http_{status}" if status and status >= 400 else "rejected"
                self._dead(p, error, report, reason=fallback)
            elif error is not None and not isinstance(error, Permanent):
                p.counted += 1
                self._retry_later(p, error, state)

    async def _exchange(self, request: HttpRequest, state: _Round | None,
                        ) -> tuple[int | None, str, list[Any]] | None:
        """(status, body text, outcomes) of one HTTP call through the gate; None if paused."""
        async with self.gate.slot(exclusive=request.exclusive):
            if self.paused or (state is not None and state.probe_only):
                if state is None or not state.probe_only or state.probe_taken:
                    return None
                state.probe_taken = True
            started = self._clock()
            try:
                response = await send(self.client, request)
            except httpx.RequestError as exc:  # network errors, timeouts, undecodable bodies
                self._count_request(request, None, started)
                error = Retryable(f"network error: {type(exc).__name__}: {exc}")
                return None, "", [RecordOutcome(i, error) for i in request.record_ids]
            except TypeError as exc:  # orjson could not encode the body: a mapping bug
                error = reasoned(Permanent(f"body is not JSON-encodable: {exc}"), "encode_failed")
                return None, "", [RecordOutcome(i, error) for i in request.record_ids]
            self._count_request(request, response.status_code, started)
        body = response.text
        try:
            outcomes = self.destination.interpret(request, response.status_code, response.content,
                                                  response.headers)
        except Exception as exc:
            log.exception("%s: interpret failed on HTTP %s", self.name, response.status_code)
            error = Retryable(f"unreadable response: {exc!r}", status=response.status_code)
            outcomes = [RecordOutcome(i, error) for i in request.record_ids]
        return response.status_code, body, outcomes

    async def _repaired(self, request: HttpRequest, status: int | None,
                        body: str) -> bool | DeliveryError:
        """Run the destination's repair on a permanent 4xx and send its fixes; True when it had
        fixes (the original is then retried once). A fix that failed transiently (network
        error, 408/423/429, 5xx but 501) is returned as a Retryable: the records go to a later
        round (repair included) instead of being dead-lettered for an error that was never
        theirs. Other fix failures are ignored (e.g. "already exists") except 401/403, which
        pause the destination."""
        if self._repair is None or status is None or not 400 <= status < 500:
            return False
        try:
            fixes = self._repair(request, status, body)
        except Exception:
            log.exception("%s: repair failed", self.name)
            return False
        transient: DeliveryError | None = None
        for fix in fixes or []:
            answer = await self._exchange(fix, None)
            if answer is None:
                continue
            fix_status, fix_body = answer[0], answer[1]
            if fix_status in (401, 403):
                self._pause(fix, fix_status)
            elif fix_status is None or isinstance(classify_status(fix_status), Retryable):
                transient = Retryable(
                    f"{fix.kind} (repair) failed: HTTP {fix_status or 'network error'}",
                    status=fix_status, body=fix_body[:EXCERPT_CHARS])
        if transient is not None and not self.paused:
            return transient
        return bool(fixes)

    def _live(self, request: HttpRequest, progress: dict[str, _Progress]) -> list[str]:
        return [i for i in request.record_ids if i in progress and not progress[i].resolved]

    def _defer(self, request: HttpRequest, state: _Round, progress: dict[str, _Progress]) -> None:
        for record_id in self._live(request, progress):
            state.deferred.add(record_id)
            state.blocked_keys |= progress[record_id].order_keys

    def _retry_later(self, p: _Progress, error: DeliveryError, state: _Round) -> None:
        p.error = error
        self.outage.failed([p.record.id], error, p.status)
        state.retry.add(p.record.id)
        state.blocked_keys |= p.order_keys
        if isinstance(error, Throttled) and error.retry_after is not None:
            state.retry_after = max(state.retry_after or 0.0, error.retry_after)

    def _on_attempt(self, request: Any, status: int | None, body: str, live: list[str],
                    progress: dict[str, Any], errors: dict[str, Any]) -> None:
        if self.on_attempt is not None:  # records, attempt numbers, the errors they end with
            self.on_attempt(request, status, body, [(progress[i].record, progress[i].attempts,
                                                     errors[i]) for i in live])

    def _delivered(self, ids: list[str], progress: dict[str, _Progress], report: DeliveryReport,
                   status: int | None) -> None:
        if not ids:
            return
        now = self._wall()
        if self.ledger is not None:
            try:
                self.ledger.mark(ids, now)
            except Exception:
                log.exception("%s: could not mark %d delivered ids in the ledger", self.name,
                              len(ids))
        latency = None
        for record_id in ids:
            p = progress[record_id]
            p.resolved = True
            report.delivered.append(record_id)
            if p.record.created_at > 0:
                if latency is None:
                    latency = self.metrics.delivery_latency_seconds.labels(self.name)
                latency.observe(max(0.0, now - p.record.created_at))
        self.metrics.delivered.labels(self.name, status_class(status)).inc(len(ids))

    def _dead(self, p: _Progress, error: DeliveryError | None, report: DeliveryReport, *,
              reason: str) -> None:
        error = error or Permanent(reason)
        if reason != RETRIES_EXHAUSTED:
            reason = getattr(error, "reason", None) or reason
        p.resolved = True
        body = p.body or error.body[:EXCERPT_CHARS]
        report.dead.append(DeadRecord(p.record, error, reason, p.status, body, p.attempts,
                                      p.first_at, p.last_at))
        klass = status_class(p.status) if p.attempts else "mapping"
        self.metrics.dead_lettered.labels(self.name, klass).inc()
        log.warning("%s: record %s dead-lettered: %s (status %s, %d attempt(s))", self.name,
                    p.record.id, reason, p.status, p.attempts,
                    extra={"destination": self.name, "reason": reason, "status": p.status})

    def _count_request(self, request: HttpRequest, status: int | None, started: float) -> None:
        self.metrics.observe_request(self.name, request.kind, status, self._clock() - started,
                                     len(request.record_ids))

    def _pause(self, request: HttpRequest, status: int | None) -> None:
        if self.paused:
            return
        self.paused, self._paused_since = True, self._clock()
        self.metrics.auth_paused.labels(self.name).set(1)
        log.error("DESTINATION %s PAUSED: HTTP %s on %s (credentials rejected). Its records are "
                  "kept, not dead-lettered; probing every %gs until it answers. Check the %s "
                  "credentials and account.", self.name, status, request.kind,
                  self.delivery.auth_probe_interval_s, self.name,
                  extra={"destination": self.name, "status": status})

    def _resume(self) -> None:
        if not self.paused:
            return
        self.paused = False
        self.metrics.auth_paused.labels(self.name).set(0)
        log.warning("destination %s resumed after %.0fs paused on authentication", self.name,
                    self._clock() - self._paused_since, extra={"destination": self.name})

