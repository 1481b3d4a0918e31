"""Every Prometheus metric streamproc exports, on a private registry per Metrics object (so
several apps or tests in one process never clash), with render() and a test-friendly snapshot().

Metric (exported name)                          type       labels
events_in (streamproc_events_in_total)          counter    source, type
routed (streamproc_routed_total)                counter    destination
dropped (streamproc_dropped_total)              counter    source, destination, reason
dead_lettered_ingest (..._total)                counter    source, reason
delivered (streamproc_delivered_total)          counter    destination, status_class
retried (streamproc_retried_total)              counter    destination, status_class
failed (streamproc_failed_total)                counter    destination, status_class
dead_lettered (streamproc_dead_lettered_total)  counter    destination, status_class
delivery_latency_seconds                        histogram  destination
request_duration_seconds                        histogram  destination
batch_size (records per HTTP request)           histogram  destination
requests (streamproc_requests_total)            counter    destination, kind, status
auth_paused (1 = destination paused on 401/403) gauge      destination
destination_paused (1 = paused on an outage)    gauge      destination
destination_paused_since (unix s; 0 = not)      gauge      destination
destination_waiting_records (its sink's lag)    gauge      destination
consumer_lag                                    gauge      topic, partition
table_keys                                      gauge      table
batch_retries                                   gauge      topic, partition
faust_stream_records                            gauge      (none)
changelog_records_read (..._total)              counter    table, role (recovery, standby)
ingest_requests (..._total)                     counter    endpoint, status
tracks_held (streamproc_tracks_held_total)      counter    source, waits_for
holds_dropped (..._total)                       counter    reason (expired, overflow), source,
                                                           waits_for
holds_released (..._total)                      counter    source, waits_for
held_now (streamproc_held_now)                  gauge      source, waits_for
ready (1 = /ready says ready, set per scrape)   gauge      (none)

status_class is "2xx", "4xx", "5xx", "network" or "mapping" (rejected before any request);
requests' status is the HTTP code ("200", "429", ...) or "network".
Holds (STREAMPROC_HOLD_SECONDS > 0; streamproc/core/routing/holds.py): an input waiting for state
another topic updates, by source and waits_for (the reason it is dropped for without that
state: segment/unknown_user, mailmodo/not_identified, mailmodo/no_clevertap_id,
mailjet/not_identified). tracks_held (the name predates other sources) counts inputs held;
holds_released those decided once the state arrived; holds_dropped those decided without it,
reason "expired" (the hold time passed) or "overflow" (pushed out beyond the key's limit);
held_now what this worker's active partitions hold now (refreshed by the sweeper). Expired
holds are also in `dropped` with their reason (a Mailjet event is sent with the email as
anonymousId instead, as without holds). Every series is exported from the start (at 0), so
increase() sees the first one.
Use the attributes directly: `metrics.dropped.labels("segment", "mailmodo", "missing_email").inc()`.
snapshot() keys are metric names (without prefix/suffix), then a tuple of label values (in the
order above, always a tuple, also for one label): counters and gauges map to numbers, histograms
to {"count": n, "sum": s}.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from streamproc.core.routing.drops import HOLD_REASONS

log = logging.getLogger(__name__)

NAMESPACE = "streamproc"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, 14400)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
HOLD_DROP_REASONS = ("expired", "overflow")


def status_class(status: int | None) -> str:
    """200 -> "2xx", 503 -> "5xx"; None (no HTTP answer) -> "network"."""
    if status is None:
        return "network"
    return f"{status // 100}xx"


class Metrics:
    """All product metrics on one private CollectorRegistry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._refreshers: list[Callable[[Any], None]] = []

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, namespace=NAMESPACE, registry=self.registry)

        def gauge(name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
            return Gauge(name, doc, labels, namespace=NAMESPACE, registry=self.registry)

        def histogram(name: str, doc: str, labels: tuple[str, ...],
                      buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, doc, labels, namespace=NAMESPACE, registry=self.registry,
                             buckets=buckets)

        self.events_in = counter("events_in", "Input events read", ("source", "type"))
        self.routed = counter("routed", "Sink records routed to a destination", ("destination",))
        self.dropped = counter("dropped", "Inputs a destination does not get, by reason",
                               ("source", "destination", "reason"))
        self.dead_lettered_ingest = counter(
            "dead_lettered_ingest", "Inputs dead-lettered at ingest", ("source", "reason"))
        self.delivered = counter("delivered", "Records the destination API acknowledged",
                                 ("destination", "status_class"))
        self.retried = counter("retried", "Records scheduled for another attempt",
                               ("destination", "status_class"))
        self.failed = counter("failed", "Failed record attempts (retryable, permanent or auth)",
                              ("destination", "status_class"))
        self.dead_lettered = counter("dead_lettered", "Records dead-lettered at delivery",
                                     ("destination", "status_class"))
        self.delivery_latency_seconds = histogram(
            "delivery_latency_seconds", "Sink record created -> acknowledged by the API",
            ("destination",), LATENCY_BUCKETS)
        self.request_duration_seconds = histogram(
            "request_duration_seconds", "Duration of one HTTP request", ("destination",),
            REQUEST_BUCKETS)
        self.batch_size = histogram("batch_size", "Records per HTTP request", ("destination",),
                                    BATCH_BUCKETS)
        self.requests = counter("requests", "HTTP requests sent", ("destination", "kind", "status"))
        self.auth_paused = gauge("auth_paused", "1 while the destination is paused on 401/403",
                                 ("destination",))
        self.destination_paused = gauge(
            "destination_paused", "1 while the destination is paused on transient failures "
            "(an outage): its sink is held and probed, nothing dead-lettered inside the retry "
            "budget", ("destination",))
        self.destination_paused_since = gauge(
            "destination_paused_since_seconds", "Unix time the outage pause began (its first "
            "transient failure), 0 when not paused", ("destination",))
        self.destination_waiting_records = gauge(
            "destination_waiting_records", "Records of the destination's sink partitions on this "
            "worker not delivered yet (their lag from the committed offset)", ("destination",))
        self.consumer_lag = gauge("consumer_lag", "Messages behind the end of the partition",
                                  ("topic", "partition"))
        self.table_keys = gauge("table_keys", "Keys in a state table", ("table",))
        self.batch_retries = gauge(
            "batch_retries", "Failed agent batches in a row of a partition being read again "
            "from its checkpoint (0 when its last batch succeeded)", ("topic", "partition"))
        self.faust_stream_records = gauge(
            "faust_stream_records", "Records of topics other than the table changelogs handed "
            "to faust's own streams instead of a feed (0 expected)", ())
        self.changelog_records_read = counter(
            "changelog_records_read", "Table changelog records applied: role=recovery while "
            "recovering active partitions (restart, rebalance, failover), role=standby while "
            "keeping standby replicas warm", ("table", "role"))
        self.ingest_requests = counter("ingest_requests", "Ingest HTTP requests",
                                       ("endpoint", "status"))
        hold_labels = ("source", "waits_for")
        self.tracks_held = counter(
            "tracks_held", "Inputs held for state another topic updates", hold_labels)
        self.holds_dropped = counter(
            "holds_dropped", "Held inputs decided without the state: reason=expired (hold time "
            "passed), overflow (beyond the key's held-input limit)", ("reason", *hold_labels))
        self.holds_released = counter(
            "holds_released", "Held inputs decided once their state arrived", hold_labels)
        self.held_now = gauge("held_now", "Inputs held now on this worker's partitions",
                              hold_labels)
        for pair in HOLD_REASONS:  # every series exported at 0 from the start
            for reason in HOLD_DROP_REASONS:
                self.holds_dropped.labels(reason, *pair)
            for metric in (self.tracks_held, self.holds_released, self.held_now):
                metric.labels(*pair)
        self.ready = gauge("ready", "1 when the worker is ready (as GET /ready), else 0; set "
                           "before each scrape", ())
        self._metrics: dict[str, Counter | Gauge | Histogram] = {
            name: value for name, value in vars(self).items()
            if isinstance(value, (Counter, Gauge, Histogram))}

    def observe_request(self, destination: str, kind: str, status: int | None, seconds: float,
                        records: int) -> None:
        """One HTTP request: requests{status, or "network"}, its duration, records it carried."""
        self.requests.labels(destination, kind, "network" if status is None else str(status)).inc()
        self.request_duration_seconds.labels(destination).observe(max(0.0, seconds))
        self.batch_size.labels(destination).observe(records)

    def on_refresh(self, refresher: Callable[[Any], None]) -> None:
        """Register `refresher(runtime)`, called before each scrape (e.g. to set consumer_lag)."""
        self._refreshers.append(refresher)

    def refresh(self, runtime: Any = None) -> None:
        """Run the refreshers; one that fails is logged and never breaks the scrape."""
        for refresher in self._refreshers:
            try:
                refresher(runtime)
            except Exception:
                log.exception("metrics refresher %r failed", refresher)

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, dict[tuple[str, ...], Any]]:
        """{metric: {label values: number}} (histograms: {"count", "sum"}), for tests."""
        out: dict[str, dict[tuple[str, ...], Any]] = {}
        for name, metric in self._metrics.items():
            values: dict[tuple[str, ...], Any] = {}
            labelnames = metric._labelnames  # noqa: SLF001 - the public API has no accessor
            for family in metric.collect():
                for sample in family.samples:
                    key = tuple(sample.labels[label] for label in labelnames)
                    suffix = sample.name[len(family.name):]
                    if isinstance(metric, Histogram):
                        if suffix in ("_count", "_sum"):
                            values.setdefault(key, {"count": 0.0, "sum": 0.0})[suffix[1:]] = (
                                sample.value)
                    elif suffix in ("", "_total"):
                        values[key] = sample.value
            out[name] = values
        return out
