"""create_app(settings, topology): the faust App with its topics, RocksDB tables, agents and
web pages. No autodiscovery and no module-level app, so every test can build a fresh one."""

from __future__ import annotations

import logging
from typing import Any

import faust

from streamproc.config.kafka import client_kwargs, ssl_context
from streamproc.config.settings import KafkaSettings, Settings
from streamproc.config.topology import Topology
from streamproc.core.metrics import Metrics
from streamproc.http import observe, status, web
from streamproc.http.ingest import routes as ingest
from streamproc.runtime import SCHEME, check_versions
from streamproc.worker import agents, summary
from streamproc.worker.context import Runtime
from streamproc.worker.output import OutputProducer

log = logging.getLogger(__name__)


def faust_credentials(k: KafkaSettings) -> Any:
    """faust's broker_credentials for the configured security protocol (None = plaintext)."""
    ctx = ssl_context(k)
    if k.security_protocol == "PLAINTEXT":
        return None
    if k.security_protocol == "SSL":
        return faust.SSLCredentials(ctx)
    if k.sasl_mechanism == "PLAIN":
        return faust.SASLCredentials(username=k.sasl_username, password=k.sasl_password.get(),
                                     ssl_context=ctx)
    return faust.SASLCredentials(username=k.sasl_username, password=k.sasl_password.get(),
                                 mechanism=k.sasl_mechanism, ssl_context=ctx)


def broker_url(k: KafkaSettings) -> str:
    """faust's broker URL: the `streamproc` scheme selects streamproc.runtime's transport."""
    return ";".join(f"{SCHEME}://{h.strip()}" for h in k.bootstrap_servers.split(",")
                    if h.strip())


def create_app(settings: Settings, topology: Topology, *, metrics: Metrics | None = None,
               ) -> faust.App:
    """Build the app. `app.streamproc` is the Runtime the agents and pages use."""
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
    outcomes.install(runtime)  # rt.outcomes (None: STREAMPROC_OUTCOMES=off)
    trace_view.install(runtime)
    agents.register(runtime)
    observe.install(runtime)
    summary.install(runtime)  # the periodic INFO summary line (LOG_SUMMARY_INTERVAL_S)
    status.install(runtime)  # sampler timer; /status pages via runtime.web_hooks
    if settings.web_enabled:
        runtime.web_hooks.append(ingest.register)
        web.register(runtime)
    return app
