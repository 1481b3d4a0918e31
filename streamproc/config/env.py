"""Env: reads the STREAMPROC_* variables for load_settings, converting and validating each
(choices, numbers, booleans, files, destination base URLs) and naming the variable on error.
Secret: a secret value, masked in repr and str so it never reaches a log."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from streamproc.core.errors import ConfigError

PREFIX = "STREAMPROC_"

# Base URLs of earlier releases ended in these paths: still accepted, with the path stripped
# (a prefix before it kept) and a warning at start saying what to write instead.
_LEGACY_BASE_PATHS = {"mailmodo": ("/api/v1",), "mailjet": ("/v3/REST", "/v3")}


class Secret:
    """A secret string: prints as '**********'. Call .get() to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Env:
    """Reads STREAMPROC_* variables, converting and validating, naming the variable on error."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.used: set[str] = set()
        self.warnings: list[str] = []

    def raw(self, name: str) -> str | None:
        var = PREFIX + name
        self.used.add(var)
        value = self.environ.get(var)
        return None if value is None or value.strip() == "" else value.strip()

    def str(self, name: str, default: str | None) -> Any:
        v = self.raw(name)
        return default if v is None else v

    def choice(self, name: str, default: str, choices: tuple[str, ...], upper: bool = True) -> str:
        v = self.raw(name)
        if v is None:
            return default
        v = v.upper() if upper else v.lower()
        if v not in choices:
            raise ConfigError(f"{PREFIX}{name}={v!r} is not one of {', '.join(choices)}")
        return v

    def _number(self, name: str, convert: type, what: str) -> tuple[str, Any] | None:
        """(text, converted) of a set variable, None if unset; ConfigError if not `what`."""
        v = self.raw(name)
        if v is None:
            return None
        try:
            return v, convert(v)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name}={v!r} is not {what}") from None

    def int(self, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        got = self._number(name, int, "an integer")
        if got is None:
            return default
        n = got[1]
        if n < minimum or (maximum is not None and n > maximum):
            rng = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise ConfigError(f"{PREFIX}{name}={n} must be {rng}")
        return n

    def float(self, name: str, default: float, minimum: float = 0.0) -> float:
        got = self._number(name, float, "a number")
        if got is None:
            return default
        v, n = got
        if n < minimum or n != n:
            raise ConfigError(f"{PREFIX}{name}={v} must be >= {minimum}")
        return n

    def bool(self, name: str, default: bool) -> bool:
        v = self.raw(name)
        if v is None:
            return default
        low = v.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{PREFIX}{name}={v!r} is not a boolean (true/false)")

    def secret(self, name: str) -> Secret:
        return Secret(self.raw(name) or "")

    def base_url(self, dest: str, default: str) -> str:
        """STREAMPROC_<DEST>_BASE_URL: scheme://host[:port][/prefix], where the vendor's API is
        served, without the vendor's API path (the client adds it: API_PATHS). Trailing slashes
        are dropped. A value ending in an old API path (Mailmodo's /api/v1, Mailjet's /v3/REST
        or /v3) is accepted with that path stripped (any prefix kept) and a warning; a query,
        fragment or user:password@ is a ConfigError (the password is never echoed)."""
        name = f"{dest.upper()}_BASE_URL"
        v = self.raw(name)
        if v is None:
            return default
        var = PREFIX + name
        parts = urlsplit(v)
        host = parts.netloc.rpartition("@")[2]  # without any userinfo
        if "@" in parts.netloc:
            # httpx would send user:password as Basic auth, replacing the destination's
            # Authorization header, and the URL is logged unmasked: refuse, echo no secret.
            raise ConfigError(
                f"{var} must not contain user:password@ (the destination's credentials have "
                f"their own settings, and a password in a URL would be logged): write "
                f"{var}={parts.scheme.lower()}://{host}{parts.path.rstrip('/')}")
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{var}={v!r} is not an http(s) URL (write scheme://host[:port][/prefix])")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ConfigError(
                f"{var}={v!r} has a bad port (write scheme://host[:port][/prefix])") from None
        path = parts.path.rstrip("/")
        if parts.query or parts.fragment:
            raise ConfigError(
                f"{var} must be scheme://host[:port][/prefix], without a query or fragment; "
                f"got {v!r}: write {var}={parts.scheme.lower()}://{host}{path}")
        base = f"{parts.scheme.lower()}://{host}{path}"
        for legacy in _LEGACY_BASE_PATHS.get(dest, ()):
            if path.lower().endswith(legacy.lower()):
                stripped = base[:len(base) - len(legacy)]
                self.warnings.append(
                    f"{var}={v} ends in the API path {path[len(path) - len(legacy):]}, which the "
                    f"client adds itself: using {stripped}. Write {var}={stripped} instead.")
                return stripped
        return base

    def file(self, name: str) -> str | None:
        v = self.raw(name)
        if v is not None and not Path(v).is_file():
            raise ConfigError(f"{PREFIX}{name}={v!r}: no such file")
        return v
