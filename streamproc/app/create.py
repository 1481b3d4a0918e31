"""create_app(settings, topology): the faust App with its topics, RocksDB tables, agents and
web pages. No autodiscovery and no module-level app, so every test can build a fresh one."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import faust

from streamproc.config.kafka import broker_url, client_kwargs, faust_credentials
from streamproc.config.settings import Settings
from streamproc.config.topology import Topology
from streamproc.core.metrics import Metrics
from streamproc.worker.output import OutputProducer

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What the agents share: settings, topology, the output producer, metrics, tables."""

    app: faust.App
    settings: Settings
    topology: Topology
    metrics: Metrics
    output: OutputProducer
    tables: dict[str, Any] = field(default_factory=dict)
    topics: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


def create_app(settings: Settings, topology: Topology, *, metrics: Metrics | None = None,
               ) -> faust.App:
    """Build the app. `app.streamproc` is the Runtime the agents and pages use."""
    from streamproc.http import web
    from streamproc.http.ingest import common as ingest
    from streamproc.runtime import check_versions
    from streamproc.worker import agents  # local: keep module import order explicit

    check_versions()  # the runtime corrects faust's internals of these exact versions
    k = settings.kafka
    app = faust.App(
        settings.app_id,
        broker=broker_url(k),
        broker_credentials=faust_credentials(k),
        broker_client_id=settings.client_id,
        store="rocksdb://",
        datadir=settings.data_dir,
        autodiscover=False,
        web_enabled=settings.web_enabled,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        producer_acks=-1,
        # faust's producer writes the table changelogs, one record per table write; with its
        # defaults (no linger, 16 KB batches) that was one produce request per write, the
        # largest CPU cost of the worker (bench/routing.py: 20,386 -> 6,754 requests per 20k
        # inputs). Commits still flush it first.
        producer_linger=0.005,
        producer_max_batch_size=256 * 1024,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=k.session_timeout_s,
        broker_heartbeat_interval=k.heartbeat_interval_s,
        consumer_group_instance_id=k.group_instance_id,
        topic_replication_factor=min(t.replication_factor for t in topology.all_topics()),
        topic_partitions=topology.internal["by_user"].partitions,
        table_standby_replicas=settings.standby_replicas,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        stream_processing_timeout=600.0,
        logging_config=None,
        loghandlers=[],
    )
    runtime = Runtime(
        app=app,
        settings=settings,
        topology=topology,
        metrics=metrics or Metrics(),
        output=OutputProducer(client_kwargs(k), settings.client_id),
    )
    app.streamproc = runtime  # type: ignore[attr-defined]
    app.service(runtime.output)
    from streamproc.http import trace_view
    from streamproc.worker import outcomes  # issue 15: outcomes, /trace.json
    outcomes.install(runtime)  # rt.extras["outcomes"] (None: STREAMPROC_OUTCOMES=off)
    trace_view.install(runtime)
    agents.register(runtime)
    from streamproc.http import observe, status  # operate: refreshers, status, summary
    from streamproc.worker import summary
    observe.install(runtime)
    summary.install(runtime)  # the periodic INFO summary line (LOG_SUMMARY_INTERVAL_S)
    status.install(runtime)  # sampler timer; /status pages via extras["web_hooks"]
    if settings.web_enabled:
        runtime.extras.setdefault("web_hooks", []).append(ingest.register)
        web.register(runtime)
    return app
