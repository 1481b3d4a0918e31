"""Settings from the environment (prefix STREAMPROC_). Every variable is listed in
.env.example; a bad or missing one fails at start with a ConfigError naming it. Secrets are
`Secret` values: their repr and str are masked, so they never reach a log."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from streamproc.config.env import PREFIX, Env, Secret
from streamproc.core.errors import ConfigError

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
ISOLATION_LEVELS = ("read_committed", "read_uncommitted")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SEGMENT_REGIONS = {"us": "https://api.segment.io", "eu": "https://events.eu1.segmentapis.com"}
CLEVERTAP_REGIONS = ("eu", "in1", "sg1", "us1", "aps3", "mec1")
MAILJET_ACTIONS = ("addnoforce", "addforce", "remove", "unsub")
# One convention for the four STREAMPROC_<DEST>_BASE_URL settings: scheme://host[:port][/prefix],
# where the vendor's API is served (a path prefix for a reverse proxy or a mock), without the
# vendor's API path. The client adds that path to the base URL (streamproc.delivery.client):
API_PATHS = {"mailmodo": "/api/v1", "segment": "", "clevertap": "", "mailjet": "/v3/REST"}


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = ""  # empty: the local broker (started by `streamproc dev`/tests)
    security_protocol: str = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: str = "PLAIN"
    sasl_username: str | None = None
    sasl_password: Secret = field(default_factory=lambda: Secret(""))
    # how inputs are read: read_committed skips records of aborted transactions (and waits
    # for open ones); read_uncommitted also hands those over
    isolation_level: str = "read_committed"
    # consumer group membership: a worker that stops heartbeating for session_timeout_s is
    # taken out of the group and its partitions move (failover); heartbeats every
    # heartbeat_interval_s. group_instance_id (static membership, KIP-345): a worker restarted
    # with the same id within the session timeout gets its partitions back without a rebalance
    session_timeout_s: float = 10.0
    heartbeat_interval_s: float = 3.0
    group_instance_id: str | None = None


@dataclass(frozen=True)
class DeliverySettings:
    """Per-destination delivery tuning (STREAMPROC_<DEST>_...)."""

    rate_limit_rps: float  # requests per second (0 = unlimited)
    concurrency: int  # requests in flight
    max_attempts: int = 8
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_time_s: float = 120.0  # in-call retries per batch; under faust's 300 s watchdogs
    # how long a record is held on transient failures (destination paused, probed) before it
    # is dead-lettered as retries_exhausted; from its or the outage's first failure, in memory
    retry_budget_s: float = 14400.0
    timeout_s: float = 10.0
    linger_ms: int = 200
    auth_probe_interval_s: float = 30.0


@dataclass(frozen=True)
class MailmodoSettings:
    base_url: str = "https://api.mailmodo.com"  # no /api/v1: the client adds it
    api_key: Secret = field(default_factory=lambda: Secret(""))
    list_name: str = "segment"
    use_batch: bool = True  # contact upserts through addToList/batch (one call in flight)
    delivery: DeliverySettings = field(
        default_factory=lambda: DeliverySettings(rate_limit_rps=5.0, concurrency=4))


@dataclass(frozen=True)
class SegmentSettings:
    base_url: str = SEGMENT_REGIONS["us"]
    write_key: Secret = field(default_factory=lambda: Secret(""))
    send_blocked: bool = False  # Mailjet `blocked` -> "Email Blocked" instead of a counted drop
    delivery: DeliverySettings = field(
        default_factory=lambda: DeliverySettings(rate_limit_rps=50.0, concurrency=4))


@dataclass(frozen=True)
class CleverTapSettings:
    base_url: str = "https://api.clevertap.com"
    account_id: str = ""
    passcode: Secret = field(default_factory=lambda: Secret(""))
    delivery: DeliverySettings = field(
        default_factory=lambda: DeliverySettings(rate_limit_rps=0.0, concurrency=15))


@dataclass(frozen=True)
class MailjetSettings:
    base_url: str = "https://api.mailjet.com"  # no /v3/REST: the client adds it
    api_key: str = ""
    api_secret: Secret = field(default_factory=lambda: Secret(""))
    list_id: str = ""
    action: str = "addnoforce"
    delivery: DeliverySettings = field(
        default_factory=lambda: DeliverySettings(rate_limit_rps=10.0, concurrency=4))


@dataclass(frozen=True)
class IngestSettings:
    """Webhook/collector authentication tokens (empty: that endpoint is refused)."""

    segment_write_keys: tuple[str, ...] = ()
    webhook_token: Secret = field(default_factory=lambda: Secret(""))
    max_body_bytes: int = 512 * 1024


@dataclass(frozen=True)
class RoutingSettings:
    identify_email_from_state: bool = False  # route 2 alternative
    hold_seconds: float = 3600.0  # how long an input waits for state another topic updates
    ledger_retention_hours: float = 72.0


def _hold_seconds(env: Any) -> float:
    """HOLD_SECONDS; the old TRACK_GRACE_SECONDS (tracks only) is read when it is not set."""
    new, old = env.raw("HOLD_SECONDS"), env.raw("TRACK_GRACE_SECONDS")  # both known names
    if new is None and old is not None:
        env.warnings.append("STREAMPROC_TRACK_GRACE_SECONDS is replaced by "
                            "STREAMPROC_HOLD_SECONDS (it holds every input waiting for state)")
        return env.float("TRACK_GRACE_SECONDS", 3600.0)
    return env.float("HOLD_SECONDS", 3600.0)


@dataclass(frozen=True)
class OutcomesSettings:
    """The outcomes topic behind `streamproc trace` (streamproc/worker/outcomes.py)."""

    enabled: bool = True  # STREAMPROC_OUTCOMES=on|off, per worker
    mask_emails: bool = True  # e.g. j***@example.com in outcomes and response bodies
    body_chars: int = 500  # response bodies kept per delivery attempt


@dataclass(frozen=True)
class Settings:
    app_id: str = "streamproc"
    client_id: str = "streamproc"
    data_dir: str = ".streamproc/data"
    topics_file: str = "topics.yaml"
    topic_prefix: str = ""  # prepended to every topic name in topics.yaml (environments, tests)
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    web_enabled: bool = True
    log_level: str = "INFO"
    log_format: str = "text"
    standby_replicas: int = 0
    gc_threshold: int = 50_000  # gen-0 threshold of Python's cyclic GC; 0: Python's default
    log_summary_interval_s: float = 60.0  # one INFO summary line per interval; 0: off
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    mailmodo: MailmodoSettings = field(default_factory=MailmodoSettings)
    segment: SegmentSettings = field(default_factory=SegmentSettings)
    clevertap: CleverTapSettings = field(default_factory=CleverTapSettings)
    mailjet: MailjetSettings = field(default_factory=MailjetSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    outcomes: OutcomesSettings = field(default_factory=OutcomesSettings)
    # Accepted settings in an old form, each with what to write instead: logged once at start.
    config_warnings: tuple[str, ...] = field(default=(), compare=False)

    def destination(self, slug: str) -> Any:
        return getattr(self, slug)


def _delivery(env: Env, dest: str, default: DeliverySettings) -> DeliverySettings:
    p = dest.upper() + "_"
    return DeliverySettings(
        rate_limit_rps=env.float(p + "RATE_LIMIT_RPS", default.rate_limit_rps),
        concurrency=env.int(p + "CONCURRENCY", default.concurrency, minimum=1, maximum=256),
        max_attempts=env.int(p + "MAX_ATTEMPTS", default.max_attempts, minimum=1),
        backoff_initial_s=env.float(p + "BACKOFF_INITIAL_S", default.backoff_initial_s),
        backoff_max_s=env.float(p + "BACKOFF_MAX_S", default.backoff_max_s),
        max_retry_time_s=env.float(p + "MAX_RETRY_TIME_S", default.max_retry_time_s),
        retry_budget_s=env.float(p + "RETRY_BUDGET_S", default.retry_budget_s, minimum=1.0),
        timeout_s=env.float(p + "TIMEOUT_S", default.timeout_s, minimum=0.01),
        linger_ms=env.int(p + "LINGER_MS", default.linger_ms),
        auth_probe_interval_s=env.float(p + "AUTH_PROBE_INTERVAL_S", default.auth_probe_interval_s,
                                        minimum=0.01),
    )


def _kafka(env: Env) -> KafkaSettings:
    protocol = env.choice("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", SECURITY_PROTOCOLS)
    k = KafkaSettings(
        bootstrap_servers=env.str("KAFKA_BOOTSTRAP_SERVERS", ""),
        security_protocol=protocol,
        ssl_cafile=env.file("KAFKA_SSL_CAFILE"),
        ssl_certfile=env.file("KAFKA_SSL_CERTFILE"),
        ssl_keyfile=env.file("KAFKA_SSL_KEYFILE"),
        ssl_check_hostname=env.bool("KAFKA_SSL_CHECK_HOSTNAME", True),
        sasl_mechanism=env.choice("KAFKA_SASL_MECHANISM", "PLAIN", SASL_MECHANISMS),
        sasl_username=env.str("KAFKA_SASL_USERNAME", None),
        sasl_password=env.secret("KAFKA_SASL_PASSWORD"),
        isolation_level=env.choice("KAFKA_ISOLATION_LEVEL", "read_committed",
                                   ISOLATION_LEVELS, upper=False),
        session_timeout_s=env.float("KAFKA_SESSION_TIMEOUT_S", 10.0),
        heartbeat_interval_s=env.float("KAFKA_HEARTBEAT_INTERVAL_S", 3.0),
        group_instance_id=env.str("KAFKA_GROUP_INSTANCE_ID", None),
    )
    if not 6.0 <= k.session_timeout_s <= 90.0:
        raise ConfigError(f"{PREFIX}KAFKA_SESSION_TIMEOUT_S must be between 6 and 90 seconds "
                          f"(the broker's group.min.session.timeout.ms default, and faust's "
                          f"request timeout, which it may not exceed), got {k.session_timeout_s}")
    if not 0 < k.heartbeat_interval_s <= k.session_timeout_s / 3:
        raise ConfigError(f"{PREFIX}KAFKA_HEARTBEAT_INTERVAL_S must be above 0 and at most a "
                          f"third of KAFKA_SESSION_TIMEOUT_S, got {k.heartbeat_interval_s}")
    if protocol.startswith("SASL"):
        if not k.sasl_username:
            raise ConfigError(
                f"{PREFIX}KAFKA_SASL_USERNAME is required when "
                f"{PREFIX}KAFKA_SECURITY_PROTOCOL={protocol}")
        if not k.sasl_password:
            raise ConfigError(
                f"{PREFIX}KAFKA_SASL_PASSWORD is required when "
                f"{PREFIX}KAFKA_SECURITY_PROTOCOL={protocol}")
    if (k.ssl_certfile is None) != (k.ssl_keyfile is None):
        raise ConfigError(
            f"{PREFIX}KAFKA_SSL_CERTFILE and {PREFIX}KAFKA_SSL_KEYFILE must be set together")
    if protocol == "PLAINTEXT" and (k.ssl_cafile or k.ssl_certfile):
        raise ConfigError(
            f"{PREFIX}KAFKA_SSL_* files are set but {PREFIX}KAFKA_SECURITY_PROTOCOL=PLAINTEXT")
    return k


def _summary_interval(env: Env, default: float) -> float:
    v = env.float("LOG_SUMMARY_INTERVAL_S", default)
    if not (v == 0 or 1 <= v < float("inf")):
        raise ConfigError(f"{PREFIX}LOG_SUMMARY_INTERVAL_S={v} must be 0 (off) or a number of "
                          "seconds from 1")
    return v


def load_settings(environ: Mapping[str, str] | None = None, *, strict: bool = True) -> Settings:
    """Build Settings from the environment. With strict, an unknown STREAMPROC_* variable
    is an error too (a typo would otherwise be silently ignored)."""
    env = Env(os.environ if environ is None else environ)
    d = Settings()
    seg_region = env.choice("SEGMENT_REGION", "us", tuple(SEGMENT_REGIONS), upper=False)
    ct_region = env.choice("CLEVERTAP_REGION", "eu", CLEVERTAP_REGIONS, upper=False)
    ct_default = ("https://api.clevertap.com" if ct_region == "eu"
                  else f"https://{ct_region}.api.clevertap.com")
    s = Settings(
        app_id=env.str("APP_ID", d.app_id),
        client_id=env.str("CLIENT_ID", d.client_id),
        data_dir=env.str("DATA_DIR", d.data_dir),
        topics_file=env.str("TOPICS_FILE", d.topics_file),
        topic_prefix=env.str("TOPIC_PREFIX", ""),
        web_host=env.str("WEB_HOST", d.web_host),
        web_port=env.int("WEB_PORT", d.web_port, minimum=0, maximum=65535),
        web_enabled=env.bool("WEB_ENABLED", d.web_enabled),
        log_level=env.choice("LOG_LEVEL", d.log_level, LOG_LEVELS),
        log_format=env.choice("LOG_FORMAT", d.log_format, LOG_FORMATS, upper=False),
        standby_replicas=env.int("STANDBY_REPLICAS", 0, minimum=0, maximum=8),
        gc_threshold=env.int("GC_THRESHOLD", d.gc_threshold, minimum=0, maximum=10_000_000),
        log_summary_interval_s=_summary_interval(env, d.log_summary_interval_s),
        kafka=_kafka(env),
        mailmodo=MailmodoSettings(
            base_url=env.base_url("mailmodo", d.mailmodo.base_url),
            api_key=env.secret("MAILMODO_API_KEY"),
            list_name=env.str("MAILMODO_LIST_NAME", d.mailmodo.list_name),
            use_batch=env.bool("MAILMODO_USE_BATCH", d.mailmodo.use_batch),
            delivery=_delivery(env, "mailmodo", d.mailmodo.delivery),
        ),
        segment=SegmentSettings(
            base_url=env.base_url("segment", SEGMENT_REGIONS[seg_region]),
            write_key=env.secret("SEGMENT_WRITE_KEY"),
            send_blocked=env.bool("SEGMENT_SEND_BLOCKED", d.segment.send_blocked),
            delivery=_delivery(env, "segment", d.segment.delivery),
        ),
        clevertap=CleverTapSettings(
            base_url=env.base_url("clevertap", ct_default),
            account_id=env.str("CLEVERTAP_ACCOUNT_ID", ""),
            passcode=env.secret("CLEVERTAP_PASSCODE"),
            delivery=_delivery(env, "clevertap", d.clevertap.delivery),
        ),
        mailjet=MailjetSettings(
            base_url=env.base_url("mailjet", d.mailjet.base_url),
            api_key=env.str("MAILJET_API_KEY", ""),
            api_secret=env.secret("MAILJET_API_SECRET"),
            list_id=env.str("MAILJET_LIST_ID", ""),
            action=env.choice("MAILJET_ACTION", d.mailjet.action, MAILJET_ACTIONS, upper=False),
            delivery=_delivery(env, "mailjet", d.mailjet.delivery),
        ),
        ingest=IngestSettings(
            segment_write_keys=tuple(
                k.strip() for k in (env.str("INGEST_SEGMENT_WRITE_KEYS", "") or "").split(",")
                if k.strip()),
            webhook_token=env.secret("INGEST_WEBHOOK_TOKEN"),
            max_body_bytes=env.int("INGEST_MAX_BODY_BYTES", 512 * 1024, minimum=1024),
        ),
        routing=RoutingSettings(
            identify_email_from_state=env.bool("IDENTIFY_EMAIL_FROM_STATE", False),
            hold_seconds=_hold_seconds(env),
            ledger_retention_hours=env.float("LEDGER_RETENTION_HOURS", 72.0, minimum=0.01),
        ),
        outcomes=OutcomesSettings(
            enabled=env.bool("OUTCOMES", True),
            mask_emails=env.bool("OUTCOMES_MASK_EMAILS", True),
            body_chars=env.int("OUTCOMES_BODY_CHARS", 500, minimum=0, maximum=2000)),
        config_warnings=tuple(env.warnings),
    )
    if strict:
        unknown = sorted(k for k in env.environ if k.startswith(PREFIX) and k not in env.used
                         and k not in _NON_SETTING_VARS)
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]} (see .env.example for the list)")
    if s.kafka.group_instance_id and s.web_port == 0:
        raise ConfigError(
            f"{PREFIX}KAFKA_GROUP_INSTANCE_ID needs a fixed {PREFIX}WEB_PORT (not 0): with static "
            "membership a restarted worker gets its old assignment back, and faust's assignor "
            "refuses it unless the worker's address is the same")
    return s


# Variables with the prefix that are read by tooling, not by Settings.
_NON_SETTING_VARS = {
    PREFIX + "KAFKA_VERSION",  # local broker version (streamproc.dev.localkafka)
    PREFIX + "CACHE_DIR",  # local broker jar cache
    PREFIX + "TEST_BOOTSTRAP_SERVERS",  # tests: an existing cluster
    PREFIX + "KAFKA_HEAP",
}


def require_credentials(s: Settings, enabled: list[str]) -> None:
    """Fail at start when an enabled destination has no credentials, naming the variable."""
    need = {
        "mailmodo": [("MAILMODO_API_KEY", s.mailmodo.api_key)],
        "segment": [("SEGMENT_WRITE_KEY", s.segment.write_key)],
        "clevertap": [("CLEVERTAP_ACCOUNT_ID", s.clevertap.account_id),
                      ("CLEVERTAP_PASSCODE", s.clevertap.passcode)],
        "mailjet": [("MAILJET_API_KEY", s.mailjet.api_key),
                    ("MAILJET_API_SECRET", s.mailjet.api_secret),
                    ("MAILJET_LIST_ID", s.mailjet.list_id)],
    }
    for dest in enabled:
        for var, value in need.get(dest, []):
            if not value:
                raise ConfigError(
                    f"{PREFIX}{var} is required: destination {dest!r} is enabled in topics.yaml "
                    f"(disable it there, or set the variable)")


def describe(s: Settings) -> dict[str, Any]:
    """Settings as a dict for logs (secrets stay masked)."""

    def conv(v: Any) -> Any:
        if hasattr(v, "__dataclass_fields__"):
            return {f.name: conv(getattr(v, f.name)) for f in fields(v)}
        if isinstance(v, Secret):
            return repr(v)
        return v

    return conv(s)
