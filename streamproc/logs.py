"""Logging: text or JSON lines, a level setting, and a filter that masks email addresses
and never lets a configured secret through."""

from __future__ import annotations

import logging
import re
import sys
import time

import orjson

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def mask_emails(text: str) -> str:
    """'jane.doe@example.com' -> 'j***@example.com'."""
    return _EMAIL.sub(r"\1***@\2", text)


class MaskingFilter(logging.Filter):
    def __init__(self, secrets: list[str] | None = None) -> None:
        super().__init__()
        self.secrets = [s for s in (secrets or []) if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        msg = mask_emails(msg)
        for s in self.secrets:
            msg = msg.replace(s, "**********")
        record.msg, record.args = msg, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("destination", "topic", "partition", "reason", "count", "status"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info:
            doc["exc"] = mask_emails(self.formatException(record.exc_info))
        return orjson.dumps(doc).decode()


def setup_logging(level: str = "INFO", fmt: str = "text", secrets: list[str] | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
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


def secrets_of(settings) -> list[str]:  # type: ignore[no-untyped-def]
    return [v for v in (settings.mailmodo.api_key.get(), settings.segment.write_key.get(),
                        settings.clevertap.passcode.get(), settings.mailjet.api_secret.get(),
                        settings.kafka.sasl_password.get(), settings.ingest.webhook_token.get(),
                        *settings.ingest.segment_write_keys) if v]
