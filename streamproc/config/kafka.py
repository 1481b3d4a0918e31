"""Kafka connection details from Settings: aiokafka client kwargs (security included) and the
TLS context. faust's broker URL and credentials are built by create_app (streamproc/app)."""

from __future__ import annotations

import ssl
from typing import Any

from streamproc.config.settings import KafkaSettings
from streamproc.core.errors import ConfigError


def ssl_context(k: KafkaSettings) -> ssl.SSLContext | None:
    if k.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    try:
        ctx = ssl.create_default_context(cafile=k.ssl_cafile)
        if k.ssl_certfile:
            ctx.load_cert_chain(k.ssl_certfile, k.ssl_keyfile)
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(f"STREAMPROC_KAFKA_SSL_*: cannot load the TLS files: {e}") from None
    ctx.check_hostname = k.ssl_check_hostname
    return ctx


def client_kwargs(k: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for aiokafka producers, consumers and admin clients."""
    if not k.bootstrap_servers:
        raise ConfigError("STREAMPROC_KAFKA_BOOTSTRAP_SERVERS is required "
                          "(or use `streamproc dev`, which starts a local broker)")
    kw: dict[str, Any] = {"bootstrap_servers": k.bootstrap_servers,
                          "security_protocol": k.security_protocol}
    ctx = ssl_context(k)
    if ctx is not None:
        kw["ssl_context"] = ctx
    if k.security_protocol.startswith("SASL"):
        kw["sasl_mechanism"] = k.sasl_mechanism
        kw["sasl_plain_username"] = k.sasl_username
        kw["sasl_plain_password"] = k.sasl_password.get()
    return kw
