"""Runs one worker of the consumer group until SIGTERM/SIGINT, then shuts down cleanly."""

from __future__ import annotations

import logging

from streamproc.settings import Settings, require_credentials
from streamproc.topology import Topology

log = logging.getLogger(__name__)


def run_worker(settings: Settings, topology: Topology) -> int:
    from faust.worker import Worker

    from streamproc import gc_tuning
    from streamproc.app import create_app
    from streamproc.logs import secrets_of, setup_logging

    setup_logging(settings.log_level, settings.log_format, secrets_of(settings))
    require_credentials(settings, topology.enabled)
    gc_tuning.configure(settings.gc_threshold)
    app = create_app(settings, topology)

    class StreamprocWorker(Worker):
        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            gc_tuning.freeze_startup_heap(settings.gc_threshold)

    worker = StreamprocWorker(app, loglevel=settings.log_level, logfile=None, quiet=True,
                              redirect_stdouts=False, override_logging=False)
    log.info("starting worker %s (group %s) on %s", settings.client_id, settings.app_id,
             settings.kafka.bootstrap_servers)
    try:
        worker.execute_from_commandline()
    except SystemExit as e:
        return int(e.code or 0)
    return 0
