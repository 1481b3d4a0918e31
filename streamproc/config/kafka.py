"""Kafka connection details from Settings: aiokafka client kwargs (security included), faust
broker credentials, and the bootstrap address in use."""

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


def faust_credentials(k: KafkaSettings) -> Any:
    """faust's broker_credentials for the configured security protocol (None = plaintext)."""
    import faust

    ctx = ssl_context(k)
    if k.security_protocol == "PLAINTEXT":
        return None
    if k.security_protocol == "SSL":
        return faust.SSLCredentials(ctx)
    if k.sasl_mechanism == "PLAIN":
        return faust.SASLCredentials(username=k.sasl_username, password=k.sasl_password.get(),
                                     ssl_context=ctx)
    return faust.SASLCredentials(username=k.sasl_username, password=k.sasl_password.get(),
                                 mechanism=k.sasl_mechanism, ssl_context=ctx)


def broker_url(k: KafkaSettings) -> str:
    """faust's broker URL: the `streamproc` scheme selects streamproc.runtime's transport."""
    from streamproc.runtime import SCHEME

    return ";".join(f"{SCHEME}://{h.strip()}" for h in k.bootstrap_servers.split(",")
                    if h.strip())
