"""What the worker writes besides its own log lines: aiokafka's transient coordinator errors of
a fresh broker come out once at INFO (CoordinatorNoiseFilter), and faust's terminal spinner
writes no escape sequence into a log file (streamproc.worker.build_worker)."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from aiokafka import errors as kafka_errors

from streamproc.logs import CoordinatorNoiseFilter, setup_logging
from streamproc.settings import Settings

GC_LOGGER = "aiokafka.consumer.group_coordinator"  # where aiokafka logs them


pytestmark = pytest.mark.usefixtures("restore_logging")  # tests/conftest.py


def _record(msg: str, *args, name: str = GC_LOGGER, level: int = logging.ERROR,
            exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.getLogger(name).makeRecord(name, level, __file__, 1, msg, args, exc_info)


def test_first_coordinator_error_is_downgraded_to_info_and_repeats_are_dropped():
    now = [1000.0]
    f = CoordinatorNoiseFilter(quiet_s=300.0, clock=lambda: now[0])
    err = kafka_errors.GroupCoordinatorNotAvailableError()
    first = _record("Group Coordinator Request failed: %s", err)
    assert f.filter(first) is True
    assert (first.levelno, first.levelname) == (logging.INFO, "INFO")
    assert first.getMessage().startswith(
        "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError")
    assert "retried" in first.getMessage()
    # the same error again (aiokafka retries every 100 ms), and via the heartbeat path
    assert f.filter(_record("Group Coordinator Request failed: %s", err)) is False
    assert f.filter(_record("Heartbeat send request failed: %s. Will retry.", err)) is False
    now[0] += 301  # a later episode (coordinator moved) is reported again, once
    again = _record("Group Coordinator Request failed: %s", err)
    assert f.filter(again) is True and again.levelno == logging.INFO


@pytest.mark.parametrize("msg,args,level", [
    ("Heartbeat failed for group %s: coordinator (node %s) is either not started or not valid",
     ("t1.app", 1), logging.WARNING),
    ("OffsetCommit failed: %s", (kafka_errors.NotCoordinatorForGroupError(),), logging.ERROR),
    ("FindCoordinator Request failed: %s", (kafka_errors.CoordinatorNotAvailableError(),),
     logging.ERROR),
])
def test_the_other_coordinator_messages_too(msg, args, level):
    f = CoordinatorNoiseFilter()
    r = _record(msg, *args, level=level)
    assert f.filter(r) is True and r.levelno == logging.INFO
    assert f.filter(_record(msg, *args, level=level)) is False


def test_an_exception_of_the_kind_counts_and_loses_its_traceback():
    f = CoordinatorNoiseFilter()
    r = _record("commit failed", name="faust.transport.consumer",
                exc=kafka_errors.NotCoordinatorForGroupError())
    assert f.filter(r) is True and r.levelno == logging.INFO and r.exc_info is None


@pytest.mark.parametrize("record", [
    _record("Unable connect to node with id 1: %s", "Connect call failed", name="aiokafka"),
    _record("Heartbeat session expired - marking coordinator dead"),
    # streamproc's own loggers are never touched, whatever they say
    _record("GroupCoordinatorNotAvailableError", name="streamproc.runtime.consumer"),
    _record("Group Coordinator Request failed: %s",
            kafka_errors.GroupCoordinatorNotAvailableError(), level=logging.INFO),
    _record("aiokafkaish %s", kafka_errors.GroupCoordinatorNotAvailableError(),
            name="aiokafkaish"),
])
def test_other_records_pass_untouched(record):
    f = CoordinatorNoiseFilter()
    level, msg = record.levelno, record.getMessage()
    assert f.filter(record) is True
    assert (record.levelno, record.getMessage()) == (level, msg)


def test_with_debug_logging_the_repeats_are_kept_at_debug():
    f = CoordinatorNoiseFilter(keep_repeats=True)
    err = kafka_errors.GroupCoordinatorNotAvailableError()
    assert f.filter(_record("Group Coordinator Request failed: %s", err)) is True
    repeat = _record("Group Coordinator Request failed: %s", err)
    assert f.filter(repeat) is True and repeat.levelname == "DEBUG"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_setup_logging_installs_it(fmt):
    out = io.StringIO()
    setup_logging("INFO", fmt, [], stream=out)
    log = logging.getLogger(GC_LOGGER)
    err = kafka_errors.GroupCoordinatorNotAvailableError()
    for _ in range(20):  # what a fresh KRaft broker produced in tests/integration logs
        log.error("Group Coordinator Request failed: %s", err)
    log.error("Unexpected error in coordinator routine")  # a real error stays an error
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert "GroupCoordinatorNotAvailableError" in lines[0] and "INFO" in lines[0]
    assert "ERROR" not in lines[0]
    assert "ERROR" in lines[1]


def test_the_worker_writes_no_terminal_escape_at_startup_end():
    """faust's Worker ends its spinner at start-up end (Spinner.finish: "\\b" + ESC[?25h to
    stdout, whether or not stdout is a terminal); streamproc's worker has no spinner."""
    import faust
    from faust.worker import Worker

    from streamproc.worker import build_worker

    async def run() -> tuple[str, str]:
        app = faust.App("noise-test", broker="kafka://127.0.0.1:1", store="memory://",
                        autodiscover=False, web_enabled=False)
        theirs_out, ours_out = io.StringIO(), io.StringIO()
        theirs = Worker(app, quiet=True, stdout=theirs_out, redirect_stdouts=False,
                        override_logging=False, loglevel="INFO")
        ours = build_worker(app, Settings(), stdout=ours_out)
        assert ours.spinner is None
        for worker in (theirs, ours):
            # the start-up end faust's on_startup_finished runs (without the block detector)
            worker._on_startup_end_spinner()  # noqa: SLF001 - faust's code path under test
        return theirs_out.getvalue(), ours_out.getvalue()

    theirs, ours = asyncio.run(run())
    assert "\x1b[?25h" in theirs  # the cause, still there upstream
    assert ours == ""
