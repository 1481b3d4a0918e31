"""Runtime: what the agents and the HTTP pages of one app share (settings, topology, metrics,
the output producer, tables and topics). create_app builds it as `app.streamproc`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import faust

from streamproc.config.settings import Settings
from streamproc.config.topology import Topology
from streamproc.core.metrics import Metrics
from streamproc.runtime import TableWriter
from streamproc.worker.output import OutputProducer


@dataclass
class Runtime:
    """What the agents share: settings, topology, the output producer, metrics, tables, and
    what the agents and pages register while the app is built (each field says who)."""

    app: faust.App
    settings: Settings
    topology: Topology
    metrics: Metrics
    output: OutputProducer
    tables: dict[str, Any] = field(default_factory=dict)
    topics: dict[str, Any] = field(default_factory=dict)
    # agents.register: the batch writers of the state tables (none in a Runtime built by hand)
    table_writers: dict[str, TableWriter] = field(default_factory=dict)
    # deliver_agents.register_delivery, per destination slug: the lazily built deliverer and
    # client ({"deliverer", "client"}), and the ledger purger (deliver_agents.LedgerPurger)
    deliverers: dict[str, dict[str, Any]] = field(default_factory=dict)
    ledger_purgers: dict[str, Any] = field(default_factory=dict)
    # pages web.register adds (ingest endpoints, status pages): called with this Runtime
    web_hooks: list[Callable[[Runtime], None]] = field(default_factory=list)
    # summary.install: the SummaryLogger (None with LOG_SUMMARY_INTERVAL_S=0)
    log_summary: Any = None
    # status.install / the status page: the http.status.Sampler of delivered/s history
    status_sampler: Any = None
    # outcomes.install: the worker.outcomes.Outcomes writer (None: STREAMPROC_OUTCOMES=off)
    outcomes: Any = None
    # holds_sweep.index: the worker.holds_sweep.HoldIndex of keys holding inputs here
    hold_index: Any = None
