"""What outcome records may show of a text: secret fields and auth headers replaced by ***, the
configured credentials removed wherever they appear, emails masked (a setting), the result
truncated (streamproc/worker/outcomes.py)."""

from __future__ import annotations

import re
from typing import Any, Iterable

from streamproc.core.logs import secrets_of

# an email as is_email accepts it (RFC 5322 atext, an internationalised domain, also with
# its letters JSON-escaped as \u00fc), also URL-encoded (%40) as in a request path a vendor
# echoes back
_LOCAL = r"(?:[\w.%+'!#$&*=?^`{|}~/-]|\\u[0-9a-fA-F]{4})"
_LABEL = r"(?:[\w-]|\\u[0-9a-fA-F]{4})+"
# the domain's dots optional: an address a parse error quotes may be a typo (jane@gmail,
# jane@gmail..com), or cut short by an excerpt (jane@example)
# A match starts only where a local part does (the lookbehinds): tried from every character
# of a long run without an @, it was quadratic (100 ms for 2,000 characters).
_EMAIL = re.compile(rf"(?<![\w.%+'!#$&*=?^`{{|}}~/-])(?<!\\u[0-9a-fA-F]{{4}})"
                    rf"({_LOCAL}){_LOCAL}*(?:@|%40)({_LABEL}(?:\.{_LABEL})*)")
# a quoted value that is an address with a space in it ('jane.doe @gmail.com')
_QUOTED_EMAIL = re.compile(r"""(['"])([^'"\s@\\])[^'"@\\]{0,64}@([^'"\s]*)\1""")
# the value of a field named like a secret: a string (escapes included), an object or array
# (one level), else a bare token; an Authorization header's whole value, whatever its scheme
_SECRET_FIELD = re.compile(
    r"""(\\?["']?(?:api[_-]?key|apikey|x-api-key|token|access[_-]?token|secret|"""
    r"""api[_-]?secret|password|passcode|write[_-]?key)\\?["']?\s*[:=]\s*)"""
    r"""(\\"(?:[^\\]|\\[^"])*?\\"|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\{[^{}]*\}|"""
    r"""\[[^\[\]]*\]|[^\s,&}]+)""",
    re.IGNORECASE)
_AUTH_FIELD = re.compile(
    r"""(\\?["']?(?:proxy-)?authorization\\?["']?\s*[:=]\s*)(\\"(?:[^\\]|\\[^"])*?\\"|"""
    r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\r\n"'}]+)""", re.IGNORECASE)
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)  # anywhere


def _hidden(m: re.Match[str]) -> str:
    """A secret field's key with its value as ***, quoted as the value was (\\" inside a
    JSON-escaped string)."""
    return m.group(1) + ('\\"***\\"' if m.group(2).startswith('\\"') else '"***"')


def mask_key(email: str) -> str:
    """mask_email for one address (no regex: the ingest hot path)."""
    at = email.find("@")
    return email[:1] + "***" + email[at:] if at > 0 else mask_email(email)


def mask_email(text: str) -> str:
    return _EMAIL.sub(r"\1***@\2", _QUOTED_EMAIL.sub(r"\1\2***@\3\1", text))


class Scrubber:
    """Makes text safe for the outcomes topic: secret fields and auth headers replaced by ***,
    the configured credentials removed wherever they appear, emails masked (when on), and
    the result truncated."""

    def __init__(self, secrets: Iterable[str] = (), *, mask: bool = True, limit: int = 500):
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self.mask, self.limit = mask, limit

    def __call__(self, text: str | None) -> str:
        if not text:
            return ""
        text = text[: self.limit * 4]  # bound the regex work on huge bodies
        text = _AUTH_FIELD.sub(_hidden, text)  # first: a credential
        text = _AUTH_SCHEME.sub(lambda m: m.group(1) + " ***", text)
        text = _SECRET_FIELD.sub(_hidden, text)  # that is a word they
        for secret in self.secrets:  # key on ("Basic", "password") would switch them off
            text = text.replace(secret, "***")
        if self.mask:
            text = mask_email(text)
        return text[: self.limit]

    def email(self, email: str | None) -> str | None:
        if not email:
            return None
        return mask_email(email) if self.mask else email


def outcome_scrubber(settings: Any) -> Scrubber:
    """The scrubber of outcome texts (and of what the status page quotes of responses)."""
    cfg = settings.outcomes
    return Scrubber(configured_secrets(settings), mask=cfg.mask_emails, limit=cfg.body_chars)


def configured_secrets(settings: Any) -> list[str]:
    """What the log filter masks (core.logs.secrets_of: every credential, the Kafka SASL
    password, the Basic tokens built from them), and Mailjet's public API key."""
    return [*secrets_of(settings), *([settings.mailjet.api_key] if settings.mailjet.api_key
                                      else [])]
