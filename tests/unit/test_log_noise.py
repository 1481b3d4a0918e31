"""What the worker writes besides its own log lines: aiokafka's transient coordinator errors of
a fresh broker come out once at INFO, and as a WARNING every 5 minutes when they last past a
60 s grace window (CoordinatorNoiseFilter), and faust's terminal spinner
writes no escape sequence into a log file (streamproc.app.run.build_worker)."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from aiokafka import errors as kafka_errors

from streamproc.config.settings import Settings
from streamproc.core.logs import CoordinatorNoiseFilter, setup_logging

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


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as e:  # noqa: BLE001 - a real traceback for the record
        return e


def test_an_exception_of_the_kind_counts_and_a_faust_record_keeps_its_traceback():
    f = CoordinatorNoiseFilter()
    exc = _raised(kafka_errors.NotCoordinatorForGroupError())
    r = _record("commit failed", name="faust.transport.consumer", exc=exc)
    r.exc_info = (type(exc), exc, exc.__traceback__)
    assert f.filter(r) is True and r.levelno == logging.INFO
    assert r.exc_info is not None and r.exc_info[1] is exc  # faust's own error: keep the why
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.emit(r)
    assert "Traceback" in out.getvalue() and "NotCoordinatorForGroupError" in out.getvalue()


def test_an_aiokafka_coordinator_retry_record_loses_its_traceback():
    f = CoordinatorNoiseFilter()
    r = _record("Group Coordinator Request failed: %s",
                kafka_errors.GroupCoordinatorNotAvailableError(),
                exc=_raised(kafka_errors.GroupCoordinatorNotAvailableError()))
    assert f.filter(r) is True and r.levelno == logging.INFO
    assert r.exc_info is None and r.exc_text is None


def test_past_the_grace_window_a_warning_says_how_long_and_how_many_retries():
    now = [1000.0]
    f = CoordinatorNoiseFilter(clock=lambda: now[0])  # grace 60 s, a warning every 300 s
    err = kafka_errors.GroupCoordinatorNotAvailableError()
    written = []
    for _ in range(600):  # 0.1 s apart, as aiokafka retries: 60 s of a missing coordinator
        r = _record("Group Coordinator Request failed: %s", err)
        if f.filter(r):
            written.append(r)
        now[0] += 0.1
    assert [r.levelno for r in written] == [logging.INFO]  # the grace window: one INFO line
    now[0] += 1.0
    late = _record("Group Coordinator Request failed: %s", err)
    assert f.filter(late) is True
    assert (late.levelno, late.levelname) == (logging.WARNING, "WARNING")
    assert late.getMessage() == (
        "group coordinator still unavailable after 61 s (601 retries): Group Coordinator "
        "Request failed: [Error 15] GroupCoordinatorNotAvailableError")
    # then at most one warning every 5 minutes, while it lasts, whatever the kind
    warnings = []
    for _ in range(7000):  # 700 s more
        now[0] += 0.1
        r = _record("Heartbeat send request failed: %s. Will retry.", err)
        if f.filter(r):
            warnings.append(r)
    assert [r.levelno for r in warnings] == [logging.WARNING, logging.WARNING]
    assert [r.getMessage().split(" (")[0] for r in warnings] == [
        "group coordinator still unavailable after 361 s",
        "group coordinator still unavailable after 661 s"]


def test_a_warning_past_the_grace_window_is_not_an_error_and_keeps_debug_repeats():
    now = [0.0]
    f = CoordinatorNoiseFilter(keep_repeats=True, clock=lambda: now[0])
    err = kafka_errors.GroupCoordinatorNotAvailableError()
    for _ in range(70):
        f.filter(_record("Group Coordinator Request failed: %s", err))
        now[0] += 1.0
    repeat = _record("Group Coordinator Request failed: %s", err)
    assert f.filter(repeat) is True and repeat.levelname == "DEBUG"


def test_a_pause_without_coordinator_errors_starts_a_new_grace_window():
    now = [0.0]
    f = CoordinatorNoiseFilter(clock=lambda: now[0])
    err = kafka_errors.GroupCoordinatorNotAvailableError()
    assert f.filter(_record("Group Coordinator Request failed: %s", err)) is True
    now[0] = 50.0
    assert f.filter(_record("Group Coordinator Request failed: %s", err)) is False
    now[0] = 115.0  # 65 s after the last one: the coordinator was back; a new episode
    r = _record("Group Coordinator Request failed: %s", err)
    assert f.filter(r) is True and r.levelno == logging.INFO
    now[0] = 170.0  # 55 s into the new episode (170 s after the first record): still grace
    assert f.filter(_record("Group Coordinator Request failed: %s", err)) is False
    now[0] = 176.0
    r = _record("Group Coordinator Request failed: %s", err)
    assert f.filter(r) is True and r.levelno == logging.WARNING
    assert "after 61 s (3 retries)" in r.getMessage()


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

    from streamproc.app.run import build_worker

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
