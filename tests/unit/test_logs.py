"""Logs: text and JSON lines through the handler setup_logging installs; emails masked and
configured secrets never written, wherever they hide (message, %-args, tracebacks, extra
fields, a logged Basic Authorization header)."""

from __future__ import annotations

import base64
import io
import logging

import orjson
import pytest

from streamproc.config.settings import load_settings
from streamproc.core.logs import MASK, MaskingFilter, mask_emails, secrets_of, setup_logging

SECRETS_ENV = {
    "STREAMPROC_MAILMODO_API_KEY": "mm-key-7f3a9c",
    "STREAMPROC_SEGMENT_WRITE_KEY": "seg-wk-51b2e0",
    "STREAMPROC_CLEVERTAP_ACCOUNT_ID": "TEST-ACCOUNT",
    "STREAMPROC_CLEVERTAP_PASSCODE": "ct-pass-88d1",
    "STREAMPROC_MAILJET_API_KEY": "mj-public-key",
    "STREAMPROC_MAILJET_API_SECRET": "mj-secret-02ce",
    "STREAMPROC_MAILJET_LIST_ID": "12345",
    "STREAMPROC_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "STREAMPROC_KAFKA_SASL_USERNAME": "svc-streamproc",
    "STREAMPROC_KAFKA_SASL_PASSWORD": "sasl-pw-c0ffee",
    "STREAMPROC_INGEST_WEBHOOK_TOKEN": "hook-token-4411",
    "STREAMPROC_INGEST_SEGMENT_WRITE_KEYS": "ingest-wk-aa01,ingest-wk-bb02",
}
SECRET_VALUES = ["mm-key-7f3a9c", "seg-wk-51b2e0", "ct-pass-88d1", "mj-secret-02ce",
                 "sasl-pw-c0ffee", "hook-token-4411", "ingest-wk-aa01", "ingest-wk-bb02"]
EMAIL = "jane.doe@example.com"


pytestmark = pytest.mark.usefixtures("restore_logging")  # tests/conftest.py


def _capture(fmt: str, secrets: list[str] | None = None) -> io.StringIO:
    out = io.StringIO()
    setup_logging("INFO", fmt, secrets, stream=out)
    return out


def _log_everything(settings=None) -> None:
    log = logging.getLogger("streamproc.test")
    log.info("contact %s upserted", EMAIL)
    log.warning("upper case %s and url-encoded %s", "Ada.Lovelace@Example.CO.uk",
                "jane.doe%40example.com")
    log.info("dropped", extra={"destination": "mailmodo", "reason": f"bad email {EMAIL}",
                               "count": 3})
    try:
        raise ValueError(f"API rejected {EMAIL}")
    except ValueError:
        log.exception("delivery failed for %s", EMAIL)
    logging.getLogger("aiokafka.conn").warning("third-party logger mentions %s", EMAIL)
    if settings is not None:
        log.info("settings: %r", settings)
        for secret in SECRET_VALUES:
            log.error("leaking %s in args", secret)
            log.error(f"leaking {secret} in the message itself")
            try:
                raise RuntimeError(f"auth failed with key={secret}")
            except RuntimeError:
                log.exception("request failed")
            log.warning("with extra", extra={"status": f"401 {secret}"})
        wk = settings.segment.write_key.get()
        mj = f"{settings.mailjet.api_key}:{settings.mailjet.api_secret.get()}"
        log.debug("never shown at INFO %s", SECRET_VALUES[0])
        log.info("headers %s", {"Authorization": "Basic " + base64.b64encode(
            f"{wk}:".encode()).decode()})
        log.info("headers %s", {"Authorization": "Basic " + base64.b64encode(
            mj.encode()).decode()})


def test_mask_emails():
    assert mask_emails("to jane.doe@example.com now") == "to j***@example.com now"
    assert mask_emails("a+b@sub.example.co.uk") == "a***@sub.example.co.uk"
    assert mask_emails("jane%40example.com") == "j***%40example.com"
    assert mask_emails("no email @ here, user@localhost") == "no email @ here, user@localhost"
    # a run without an @ is taken whole and kept (bench.scrub: linear, 0.1 ms for 8,000
    # characters where trying every start took 330 ms); the addresses around it still masked
    assert mask_emails("a.b.c x" * 3 + " to=a@x.com&cc=b@x.com") == (
        "a.b.c x" * 3 + " to=a***@x.com&cc=b***@x.com")


def test_text_output_masks_emails():
    out = _capture("text")
    _log_everything()
    text = out.getvalue()
    assert "jane.doe" not in text and "Ada.Lovelace" not in text and "jane.doe%40" not in text
    assert "contact j***@example.com upserted" in text
    assert "A***@Example.CO.uk" in text and "j***%40example.com" in text
    assert "ValueError: API rejected j***@example.com" in text  # the traceback too
    assert "third-party logger mentions j***@example.com" in text
    assert "INFO streamproc.test: contact" in text


def test_json_lines_parse_and_mask_emails():
    out = _capture("json")
    _log_everything()
    lines = out.getvalue().splitlines()
    docs = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert len(docs) == 5
    assert all(set(d) >= {"ts", "level", "logger", "msg"} for d in docs)
    assert docs[0]["msg"] == "contact j***@example.com upserted"
    assert docs[0]["level"] == "INFO" and docs[0]["logger"] == "streamproc.test"
    assert docs[0]["ts"].endswith("Z")
    assert docs[2]["destination"] == "mailmodo" and docs[2]["count"] == 3
    assert docs[2]["reason"] == "bad email j***@example.com"
    assert docs[3]["level"] == "ERROR" and "ValueError: API rejected j***@example.com" in docs[3]["exc"]
    assert docs[4]["logger"] == "aiokafka.conn"
    assert "jane.doe" not in out.getvalue()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_from_settings_never_appear(fmt):
    settings = load_settings(SECRETS_ENV)
    secrets = secrets_of(settings)
    assert set(SECRET_VALUES) <= set(secrets)
    out = _capture(fmt, secrets)
    _log_everything(settings)
    text = out.getvalue()
    assert text.count(MASK) >= 4 * len(SECRET_VALUES)
    for secret in SECRET_VALUES:
        assert secret not in text, secret
    # the Basic tokens built from them are masked as well
    for token in (f"{SECRETS_ENV['STREAMPROC_SEGMENT_WRITE_KEY']}:",
                  "mj-public-key:mj-secret-02ce"):
        assert base64.b64encode(token.encode()).decode() not in text
    assert "Basic " + MASK in text
    if fmt == "json":
        for line in text.splitlines():
            orjson.loads(line)


def test_secret_that_looks_like_an_email_is_masked_whole():
    f = MaskingFilter(["p4ss@vault.example.io", "abc"])  # "abc": too short to mask
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s abc", (
        "p4ss@vault.example.io",), None)
    f.filter(record)
    assert record.getMessage() == f"token {MASK} abc"


def test_bad_format_arguments_do_not_raise():
    out = _capture("json")
    logging.getLogger("streamproc.test").info("two %s %s", EMAIL)  # one argument missing
    doc = orjson.loads(out.getvalue())
    assert "jane.doe" not in doc["msg"] and "j***@example.com" in doc["msg"]
