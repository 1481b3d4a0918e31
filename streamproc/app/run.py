"""Runs one worker of the consumer group until SIGTERM/SIGINT, then shuts down cleanly."""

from __future__ import annotations

import logging
from typing import Any

from streamproc.config.settings import Settings, require_credentials
from streamproc.config.topology import Topology

log = logging.getLogger("streamproc.worker")  # documented name, kept


def build_worker(app: Any, settings: Settings, **kwargs: Any) -> Any:
    """faust's Worker for `app`, quiet (logs go through streamproc.core.logs only), freezing the
    start-up heap once started, and without faust's terminal spinner: streamproc never
    installs the spinner's log handler (override_logging=False), so it never spins, and its
    only output was Spinner.finish() at start-up end (and the atexit hook), writing "\\b" and
    the cursor-show sequence ESC[?25h to stdout, a log file when stdout is no terminal."""
    from faust.worker import Worker

    from streamproc.worker import gc_tuning

    class StreamprocWorker(Worker):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            self.spinner = None  # faust checks `if self.spinner` before each use

        async def on_startup_finished(self) -> None:
            await super().on_startup_finished()
            gc_tuning.freeze_startup_heap(settings.gc_threshold)

    options: dict[str, Any] = dict(loglevel=settings.log_level, logfile=None, quiet=True,
                                   redirect_stdouts=False, override_logging=False)
    return StreamprocWorker(app, **{**options, **kwargs})


def run_worker(settings: Settings, topology: Topology) -> int:
    from streamproc.app.create import create_app
    from streamproc.core.logs import secrets_of, setup_logging
    from streamproc.worker import gc_tuning

    setup_logging(settings.log_level, settings.log_format, secrets_of(settings))
    for message in settings.config_warnings:  # settings accepted in an old form
        log.warning("%s", message)
    require_credentials(settings, topology.enabled)
    gc_tuning.configure(settings.gc_threshold)
    app = create_app(settings, topology)
    if settings.kafka.security_protocol != "PLAINTEXT":  # a secured cluster: ACLs likely
        from streamproc.config.kafka_access import check_app_access

        check_app_access(app, settings, topology)  # a missing permission fails here, named
    worker = build_worker(app, settings)
    log.info("starting worker %s (group %s) on %s", settings.client_id, settings.app_id,
             settings.kafka.bootstrap_servers)
    try:
        worker.execute_from_commandline()
    except SystemExit as e:
        return int(e.code or 0)
    return 0
