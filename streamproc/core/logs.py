"""Logging: text or JSON lines, a level setting, and a filter that masks email addresses
and never lets a configured secret through (in the message, its arguments, tracebacks,
stack traces and JSON extra fields)."""

from __future__ import annotations

import base64
import logging
import re
import sys
import time
from typing import Any, TextIO

import orjson

# the second alternative takes a run without an @ whole (kept as it is, _masked): tried from
# each of its characters, the first alone is quadratic (a long token in a log line)
_EMAIL = re.compile(
    r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@|%40)([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
    r"|[A-Za-z0-9._%+-]+")
MASK = "**********"
MIN_SECRET_LEN = 4  # shorter values would mask random substrings
JSON_FIELDS = ("destination", "topic", "partition", "reason", "count", "status",
               "summary")  # summary: a dict (streamproc.summary)


def clip(text: str, n: int) -> str:
    """text cut to n characters without the token the cut falls in (its last CLIP_TOKEN
    characters at most: a long run is no credential, and must not blank the text): a
    credential or an address cut short no longer matches what removes or masks it
    (worker/scrub.py, the log filter), so a text cut for showing must not keep half of one."""
    if len(text) <= n:
        return text
    cut = text[:n]
    tail = _TOKEN_TAIL.search(cut, max(0, n - CLIP_TOKEN))
    return cut[:tail.start()] if tail else cut


CLIP_TOKEN = 100
_TOKEN_TAIL = re.compile(r"""[^\s"',:;{}\[\]()<>=&]+$""")


def mask_emails(text: str) -> str:
    """'jane.doe@example.com' -> 'j***@example.com' (also URL-encoded 'jane%40example.com')."""
    return _EMAIL.sub(_masked, text)


def _masked(m: re.Match[str]) -> str:
    return m.group(0) if m.group(1) is None else f"{m.group(1)}***{m.group(2)}{m.group(3)}"


class MaskingFilter(logging.Filter):
    """Rewrites each record in place: secrets replaced by MASK, then emails masked. Attach it
    to the handler so every record it writes, whichever logger it came from, is covered."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__()
        # longest first, so a secret that contains another is replaced whole
        self.secrets = sorted({s for s in (secrets or []) if s and len(s) >= MIN_SECRET_LEN},
                              key=len, reverse=True)

    def mask(self, text: str) -> str:
        for s in self.secrets:  # secrets first: an email-like secret must not half-survive
            if s in text:
                text = text.replace(s, MASK)
        return mask_emails(text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # bad %-args: log what we have rather than raise in the caller
            msg = f"{record.msg} {record.args!r}"
        record.msg, record.args = self.mask(str(msg)), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        for key in JSON_FIELDS:
            value = getattr(record, key, None)
            if isinstance(value, str):
                setattr(record, key, self.mask(value))
        return True


# Transient "no group coordinator yet" errors: aiokafka's consumer logs them at ERROR
# (aiokafka.consumer.group_coordinator: "Group Coordinator Request failed: [Error 15]
# GroupCoordinatorNotAvailableError", "Heartbeat send request failed: ..."), or WARNING
# ("Heartbeat failed for group ...: coordinator (node 1) is either not started or not valid"),
# while a fresh broker elects the coordinator or after it moves, and retries by itself.
_COORDINATOR_NOISE = re.compile(
    r"GroupCoordinatorNotAvailable|CoordinatorNotAvailable|NotCoordinator"
    r"|coordinator \(node \S+\) is either not started or not valid")
COORDINATOR_LOGGERS = ("aiokafka", "faust")


class CoordinatorNoiseFilter(logging.Filter):
    """aiokafka/faust's coordinator-not-available records, quiet while transient and loud once
    they last. Other records pass untouched.

    An *episode* starts with the first such record after start, or after `reset_s` (60 s) in
    which none came. During its first `grace_s` (60 s) the errors are the transient ones of a
    fresh broker electing the group coordinator, or of the coordinator moving: the first of
    each kind is written at INFO with a note that it is retried, repeats are dropped (kept at
    DEBUG when `keep_repeats`, i.e. LOG_LEVEL=DEBUG). Past the grace window the coordinator is
    really missing (offsets topic misconfigured, its leader down) and the worker will not get
    ready: a WARNING "group coordinator still unavailable after N s (M retries): <record>"
    is written at once, then at most one every `quiet_s` (5 min); repeats in between are
    dropped (DEBUG when `keep_repeats`). N counts from the episode's first record, M is the
    number of such records in the episode (each a failed attempt aiokafka retries).
    aiokafka's records lose their traceback (a retried error, not a bug); faust's keep it."""

    NOTE = " (transient while the broker elects or moves the group coordinator; retried)"

    def __init__(self, quiet_s: float = 300.0, keep_repeats: bool = False,
                 clock: Any = time.monotonic, grace_s: float = 60.0,
                 reset_s: float = 60.0) -> None:
        super().__init__()
        self.quiet_s = quiet_s
        self.grace_s = grace_s
        self.reset_s = reset_s
        self.keep_repeats = keep_repeats
        self.clock = clock
        self._first: float | None = None  # the episode's first record
        self._latest: float | None = None  # its latest record
        self._count = 0  # records in the episode
        self._written: set[tuple[str, str]] = set()  # (logger, kind) written at INFO
        self._warned: float | None = None  # the episode's latest WARNING

    @staticmethod
    def kind(record: logging.LogRecord) -> str | None:
        """The kind of coordinator record (at WARNING or above, from aiokafka/faust):
        not_available, not_coordinator or not_valid; None for any other record."""
        if record.levelno < logging.WARNING or not any(
                record.name == root or record.name.startswith(root + ".")
                for root in COORDINATOR_LOGGERS):
            return None
        try:
            text = record.getMessage()
        except Exception:
            return None
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {type(record.exc_info[1]).__name__}"
        match = _COORDINATOR_NOISE.search(text)
        if match is None:
            return None
        found = match.group(0)
        return ("not_coordinator" if found.startswith("Not") else
                "not_available" if found.endswith("NotAvailable") else "not_valid")

    def _repeat(self, record: logging.LogRecord) -> bool:
        if not self.keep_repeats:
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True

    def filter(self, record: logging.LogRecord) -> bool:
        kind = self.kind(record)
        if kind is None:
            return True
        now = self.clock()
        if self._latest is None or now - self._latest >= self.reset_s:  # a new episode
            self._first, self._count, self._warned = now, 0, None
            self._written.clear()
        self._latest = now
        self._count += 1
        elapsed = now - (self._first if self._first is not None else now)
        message = record.getMessage()
        if elapsed < self.grace_s:
            key = (record.name, kind)
            if key in self._written:
                return self._repeat(record)
            self._written.add(key)
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = f"{message}{self.NOTE}", None
        else:
            if self._warned is not None and now - self._warned < self.quiet_s:
                return self._repeat(record)
            self._warned = now
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = (f"group coordinator still unavailable after "
                                       f"{elapsed:.0f} s ({self._count} retries): {message}"), None
        if record.name == "aiokafka" or record.name.startswith("aiokafka."):
            record.exc_info = record.exc_text = None  # aiokafka retries it: no traceback
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, known extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in JSON_FIELDS:
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info and not record.exc_text:  # no MaskingFilter in front
            record.exc_text = mask_emails(self.formatException(record.exc_info))
        if record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        return orjson.dumps(doc, default=str).decode()


def setup_logging(level: str = "INFO", fmt: str = "text", secrets: list[str] | None = None,
                  stream: TextIO | None = None) -> logging.Handler:
    """One handler on the root logger (replacing any), writing to `stream` (stderr)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(CoordinatorNoiseFilter(keep_repeats=level == "DEBUG"))
    handler.addFilter(MaskingFilter(secrets))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    # faust/aiokafka are chatty at INFO; keep their warnings.
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request
    for noisy in ("aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING)
                                          if level != "DEBUG" else logging.DEBUG)
    return handler


def secrets_of(settings) -> list[str]:  # type: ignore[no-untyped-def]
    """Every configured secret, plus the HTTP Basic tokens built from them (Segment, Mailjet),
    so a logged Authorization header is masked too."""
    values = [settings.mailmodo.api_key.get(), settings.segment.write_key.get(),
              settings.clevertap.passcode.get(), settings.mailjet.api_secret.get(),
              settings.kafka.sasl_password.get(), settings.ingest.webhook_token.get(),
              *settings.ingest.segment_write_keys]
    tokens = []
    if settings.segment.write_key.get():
        tokens.append(f"{settings.segment.write_key.get()}:")
    if settings.mailjet.api_secret.get():
        tokens.append(f"{settings.mailjet.api_key}:{settings.mailjet.api_secret.get()}")
    for key in settings.ingest.segment_write_keys:  # ingest checks Basic auth with these
        tokens.append(f"{key}:")
    values += [base64.b64encode(t.encode()).decode() for t in tokens]
    return [v for v in values if v]
