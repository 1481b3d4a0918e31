"""What outcome records may show of a text: secret fields and auth headers replaced by ***, the
configured credentials removed wherever they appear, emails masked (a setting), the result
truncated (streamproc/worker/outcomes.py)."""

from __future__ import annotations

import re
from typing import Any, Iterable

from streamproc.core.logs import clip, secrets_of

ERROR_CHARS = 300  # what an error text (not a response body) keeps: Scrubber(text, ERROR_CHARS)

# an email as is_email accepts it (RFC 5322 atext, an internationalised domain, also with
# its letters JSON-escaped as \u00fc), also URL-encoded (%40) as in a request path a vendor
# echoes back
_LOCAL = r"(?:[\w.%+'!#$&*=?^`{|}~/-]|\\u[0-9a-fA-F]{4})"
_LABEL = r"(?:[\w-]|\\u[0-9a-fA-F]{4})+"
# the domain's dots optional: an address a parse error quotes may be a typo (jane@gmail,
# jane@gmail..com), or cut short by an excerpt (jane@example). A run of local-part characters
# without an @ is taken whole by the second alternative (and kept, _masked): tried from each
# of its characters, the first alone was quadratic (110 ms for 2,000 characters).
_EMAIL = re.compile(rf"({_LOCAL}){_LOCAL}*(?:@|%40)({_LABEL}(?:\.{_LABEL})*)|{_LOCAL}+")
# a quoted value that is an address with a space in it ('jane.doe @gmail.com'); the quote not
# a word's apostrophe (Can't ... jane@x.com's)
_QUOTED_EMAIL = re.compile(r"""(?<!\w)(['"])([^'"\s@\\])[^'"@\\]{0,64}@([^'"\s]*)\1""")
# the password of a URL (scheme://user:password@host), removed whether emails are masked or
# not (each part bounded: a scheme tried from every word of a long run must not rescan it)
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]{0,30}://[^/\s:@]{0,100}:)[^@\s/]{1,200}@")
# the value of a field named like a secret: a string (escapes included), an object or array
# (one level), else a bare token; an Authorization header's whole value, whatever its scheme
_SECRET_NAMES = (r"""(?:api[_-]?key|apikey|x-api-key|token|access[_-]?token|secret|"""
                 r"""api[_-]?secret|password|passcode|passwd|pwd|write[_-]?key|"""
                 r"""(?:secret|private|access|signing|client)[_-]?key)""")
_SECRET_FIELD = re.compile(
    rf"""(\\?["']?{_SECRET_NAMES}\\?["']?\s*[:=]\s*)"""
    r"""(\\"(?:[^\\]|\\[^"])*?\\"|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\{[^{}]*\}|"""
    r"""\[[^\[\]]*\]|[^\s,&}]+)""",
    re.IGNORECASE)
# the same names as XML elements (<password>...</password>, a SOAP fault's echo)
_SECRET_ELEMENT = re.compile(rf"(<((?:\w+:)?\w*{_SECRET_NAMES})>)[^<]{{0,2000}}(</\2>)",
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
    return _EMAIL.sub(_masked, _QUOTED_EMAIL.sub(r"\1\2***@\3\1", text))


def _masked(m: re.Match[str]) -> str:
    """An address masked; a run without an @ (the second alternative of _EMAIL) as it was."""
    return m.group(0) if m.group(1) is None else f"{m.group(1)}***@{m.group(2)}"


class Scrubber:
    """Makes text safe for the outcomes topic: secret fields and auth headers replaced by ***,
    the configured credentials removed wherever they appear, emails masked (when on), and
    the result truncated."""

    def __init__(self, secrets: Iterable[str] = (), *, mask: bool = True, limit: int = 500):
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self.mask, self.limit = mask, limit

    def __call__(self, text: str | None, limit: int | None = None) -> str:
        """text made safe and cut to `limit` characters (default: the body limit; an error
        text passes ERROR_CHARS, so that a body limit of 0 does not blank it)."""
        if not text:
            return ""
        limit = self.limit if limit is None else limit
        text = clip(text, limit * 4)  # bound the regex work on huge bodies (no half secret)
        text = _URL_PASSWORD.sub(r"\1***@", text)
        text = _AUTH_FIELD.sub(_hidden, text)  # first: a credential
        text = _AUTH_SCHEME.sub(lambda m: m.group(1) + " ***", text)
        text = _SECRET_FIELD.sub(_hidden, text)  # that is a word they
        text = _SECRET_ELEMENT.sub(r"\1***\3", text)
        for secret in self.secrets:  # key on ("Basic", "password") would switch them off
            text = text.replace(secret, "***")
        if self.mask:
            text = mask_email(text)
        return text[:limit]

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
