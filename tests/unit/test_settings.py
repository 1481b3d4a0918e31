"""Settings from the environment: defaults, conversion, and errors naming the variable."""

import pytest

from streamproc.config.settings import Secret, describe, load_settings, require_credentials
from streamproc.core.errors import ConfigError


def test_defaults_need_nothing():
    s = load_settings({})
    assert s.kafka.security_protocol == "PLAINTEXT"
    assert s.segment.base_url == "https://api.segment.io"
    assert s.clevertap.base_url == "https://api.clevertap.com"
    assert s.mailmodo.delivery.rate_limit_rps == 5.0
    assert s.kafka.isolation_level == "read_committed"
    assert load_settings({"STREAMPROC_KAFKA_ISOLATION_LEVEL": "READ_UNCOMMITTED"}
                         ).kafka.isolation_level == "read_uncommitted"


def test_regions_choose_base_urls():
    s = load_settings({"STREAMPROC_SEGMENT_REGION": "eu", "STREAMPROC_CLEVERTAP_REGION": "in1"})
    assert s.segment.base_url == "https://events.eu1.segmentapis.com"
    assert s.clevertap.base_url == "https://in1.api.clevertap.com"


@pytest.mark.parametrize("env,needle", [
    ({"STREAMPROC_WEB_PORT": "http"}, "STREAMPROC_WEB_PORT"),
    ({"STREAMPROC_WEB_PORT": "70000"}, "STREAMPROC_WEB_PORT"),
    ({"STREAMPROC_KAFKA_SECURITY_PROTOCOL": "TLS"}, "STREAMPROC_KAFKA_SECURITY_PROTOCOL"),
    ({"STREAMPROC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "STREAMPROC_KAFKA_SASL_USERNAME"),
    ({"STREAMPROC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "STREAMPROC_KAFKA_SASL_USERNAME": "u"},
     "STREAMPROC_KAFKA_SASL_PASSWORD"),
    ({"STREAMPROC_KAFKA_SASL_MECHANISM": "GSSAPI"}, "STREAMPROC_KAFKA_SASL_MECHANISM"),
    ({"STREAMPROC_KAFKA_ISOLATION_LEVEL": "committed"}, "STREAMPROC_KAFKA_ISOLATION_LEVEL"),
    ({"STREAMPROC_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "STREAMPROC_KAFKA_SSL_CAFILE"),
    ({"STREAMPROC_MAILMODO_BASE_URL": "api.mailmodo.com"}, "STREAMPROC_MAILMODO_BASE_URL"),
    ({"STREAMPROC_SEGMENT_CONCURRENCY": "0"}, "STREAMPROC_SEGMENT_CONCURRENCY"),
    ({"STREAMPROC_LOG_LEVEL": "LOUD"}, "STREAMPROC_LOG_LEVEL"),
    ({"STREAMPROC_TRACK_GRACE_SECONDS": "soon"}, "STREAMPROC_TRACK_GRACE_SECONDS"),
    ({"STREAMPROC_HOLD_SECONDS": "soon"}, "STREAMPROC_HOLD_SECONDS"),
    ({"STREAMPROC_HOLD_SECONDS": "-1"}, "STREAMPROC_HOLD_SECONDS"),
    ({"STREAMPROC_IDENTIFY_EMAIL_FROM_STATE": "maybe"}, "STREAMPROC_IDENTIFY_EMAIL_FROM_STATE"),
    ({"STREAMPROC_MAILJET_ACTION": "add"}, "STREAMPROC_MAILJET_ACTION"),
    ({"STREAMPROC_BOOTSTRAP_SERVERS": "x:9092"}, "STREAMPROC_BOOTSTRAP_SERVERS"),  # typo
    ({"STREAMPROC_GC_THRESHOLD": "-1"}, "STREAMPROC_GC_THRESHOLD"),
    ({"STREAMPROC_GC_THRESHOLD": "lots"}, "STREAMPROC_GC_THRESHOLD"),
])
def test_bad_setting_names_the_variable(env, needle):
    with pytest.raises(ConfigError) as e:
        load_settings(env)
    assert needle in str(e.value)


def test_sasl_scram_accepted():
    s = load_settings({"STREAMPROC_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
                       "STREAMPROC_KAFKA_SASL_MECHANISM": "scram-sha-512",
                       "STREAMPROC_KAFKA_SASL_USERNAME": "svc",
                       "STREAMPROC_KAFKA_SASL_PASSWORD": "hunter2-secret"})
    assert s.kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert "hunter2-secret" not in repr(s)
    assert "hunter2-secret" not in str(describe(s))
    from streamproc.config.kafka import client_kwargs
    kw = client_kwargs(s.kafka) if s.kafka.bootstrap_servers else None
    assert kw is None  # bootstrap not set: client_kwargs would fail naming it


def test_client_kwargs_without_bootstrap_names_variable():
    from streamproc.config.kafka import client_kwargs
    with pytest.raises(ConfigError, match="STREAMPROC_KAFKA_BOOTSTRAP_SERVERS"):
        client_kwargs(load_settings({}).kafka)


def test_secrets_are_masked():
    s = load_settings({"STREAMPROC_MAILMODO_API_KEY": "mm-very-secret"})
    assert s.mailmodo.api_key.get() == "mm-very-secret"
    assert "mm-very-secret" not in repr(s.mailmodo)
    assert repr(Secret("x")) == "Secret('**********')"


def test_enabled_destination_without_credentials_fails_naming_variable():
    s = load_settings({"STREAMPROC_MAILMODO_API_KEY": "k"})
    require_credentials(s, ["mailmodo"])
    with pytest.raises(ConfigError, match="STREAMPROC_CLEVERTAP_ACCOUNT_ID"):
        require_credentials(s, ["mailmodo", "clevertap"])


def test_env_example_lists_every_setting():
    """.env.example documents every variable load_settings reads."""
    from pathlib import Path
    from streamproc.config.env import Env
    from streamproc.config.settings import _NON_SETTING_VARS

    env = Env({})
    import streamproc.config.settings as mod
    orig = mod.Env
    mod.Env = lambda environ: env  # capture the names read
    try:
        load_settings({}, strict=False)
    finally:
        mod.Env = orig
    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    listed = {line.split("=", 1)[0].lstrip("# ").strip() for line in text.splitlines()
              if "=" in line and line.lstrip("# ").startswith("STREAMPROC_")}
    missing = sorted(env.used - listed)
    assert not missing, f".env.example lacks {missing}"
    assert not (listed - env.used - _NON_SETTING_VARS), "stale names in .env.example"


def test_gc_threshold_setting_tunes_the_collector():
    """STREAMPROC_GC_THRESHOLD sets the young-generation threshold; 0 leaves Python's."""
    import gc

    from streamproc.worker import gc_tuning

    assert load_settings({}).gc_threshold == 50_000
    before = gc.get_threshold()
    try:
        assert gc_tuning.configure(load_settings({"STREAMPROC_GC_THRESHOLD": "12345"})
                                   .gc_threshold)
        assert gc.get_threshold() == (12345, *gc_tuning.OLDER_THRESHOLDS)
        gc.set_threshold(*before)
        assert not gc_tuning.configure(load_settings({"STREAMPROC_GC_THRESHOLD": "0"})
                                       .gc_threshold)
        assert gc.get_threshold() == before
        frozen = gc.get_freeze_count()
        gc_tuning.freeze_startup_heap(0)
        assert gc.get_freeze_count() == frozen  # 0: nothing frozen either
        gc_tuning.freeze_startup_heap(50_000)
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_static_membership_needs_a_fixed_web_port():
    import pytest

    from streamproc.config.settings import ConfigError, load_settings

    env = {"STREAMPROC_KAFKA_GROUP_INSTANCE_ID": "worker-0", "STREAMPROC_WEB_PORT": "0"}
    with pytest.raises(ConfigError, match="STREAMPROC_KAFKA_GROUP_INSTANCE_ID needs a fixed"):
        load_settings(env, strict=False)
    ok = load_settings({**env, "STREAMPROC_WEB_PORT": "6066"}, strict=False)
    assert ok.kafka.group_instance_id == "worker-0" and ok.kafka.session_timeout_s == 10.0
    with pytest.raises(ConfigError, match="KAFKA_SESSION_TIMEOUT_S"):
        load_settings({"STREAMPROC_KAFKA_SESSION_TIMEOUT_S": "2"}, strict=False)
    with pytest.raises(ConfigError, match="KAFKA_SESSION_TIMEOUT_S"):  # above faust's 90 s
        load_settings({"STREAMPROC_KAFKA_SESSION_TIMEOUT_S": "91"}, strict=False)
    with pytest.raises(ConfigError, match="KAFKA_HEARTBEAT_INTERVAL_S"):
        load_settings({"STREAMPROC_KAFKA_HEARTBEAT_INTERVAL_S": "5"}, strict=False)


# ---- base URLs: scheme://host[:port][/prefix], the client adds the vendor's API path ---------
BASE_URL_VARS = {"mailmodo": "STREAMPROC_MAILMODO_BASE_URL", "segment": "STREAMPROC_SEGMENT_BASE_URL",
                 "clevertap": "STREAMPROC_CLEVERTAP_BASE_URL", "mailjet": "STREAMPROC_MAILJET_BASE_URL"}


def test_default_base_urls_are_origins_without_warnings():
    s = load_settings({})
    assert s.mailmodo.base_url == "https://api.mailmodo.com"
    assert s.mailjet.base_url == "https://api.mailjet.com"
    assert s.segment.base_url == "https://api.segment.io"
    assert s.clevertap.base_url == "https://api.clevertap.com"
    assert s.config_warnings == ()


@pytest.mark.parametrize("dest", list(BASE_URL_VARS))
@pytest.mark.parametrize("value,expected", [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ("HTTPS://staging.example.com", "https://staging.example.com"),
    ("https://[::1]:9000", "https://[::1]:9000"),
    # a path prefix: where a reverse proxy or a mock serves the vendor's API
    ("https://proxy.test/mailmodo", "https://proxy.test/mailmodo"),
    ("https://proxy.test/staging/vendor//", "https://proxy.test/staging/vendor"),
    ("http://127.0.0.1:8080/Mock/", "http://127.0.0.1:8080/Mock"),
])
def test_any_destination_takes_scheme_host_port_and_a_path_prefix(dest, value, expected):
    s = load_settings({BASE_URL_VARS[dest]: value})
    assert s.destination(dest).base_url == expected
    assert s.config_warnings == ()


@pytest.mark.parametrize("dest,value,base", [
    ("mailmodo", "https://api.mailmodo.com/api/v1", "https://api.mailmodo.com"),
    ("mailmodo", "http://127.0.0.1:8080/api/v1/", "http://127.0.0.1:8080"),
    ("mailmodo", "https://proxy.test/mailmodo/api/v1", "https://proxy.test/mailmodo"),
    ("mailjet", "https://api.mailjet.com/v3/REST", "https://api.mailjet.com"),
    ("mailjet", "https://api.mailjet.com/v3/rest/", "https://api.mailjet.com"),
    ("mailjet", "https://api.mailjet.com/v3", "https://api.mailjet.com"),
    ("mailjet", "https://proxy.test/mj/v3/REST", "https://proxy.test/mj"),
    ("mailjet", "https://proxy.test/mj/v3/", "https://proxy.test/mj"),
])
def test_a_base_url_ending_in_the_old_api_path_works_with_one_warning(dest, value, base):
    var = BASE_URL_VARS[dest]
    s = load_settings({var: value})
    assert s.destination(dest).base_url == base
    (warning,) = s.config_warnings
    assert warning.startswith(f"{var}={value} ends in the API path ")
    assert warning.endswith(f"Write {var}={base} instead.")


def test_each_old_base_url_gets_its_own_warning():
    s = load_settings({"STREAMPROC_MAILMODO_BASE_URL": "https://mm.test/api/v1",
                       "STREAMPROC_MAILJET_BASE_URL": "https://mj.test/v3/REST"})
    assert len(s.config_warnings) == 2
    assert [w.split("=", 1)[0] for w in s.config_warnings] == [
        "STREAMPROC_MAILMODO_BASE_URL", "STREAMPROC_MAILJET_BASE_URL"]


@pytest.mark.parametrize("dest,value", [
    ("mailmodo", "https://api.mailmodo.com/api/v1x"),  # not the API path: a prefix, as written
    ("mailmodo", "https://api.mailmodo.com/v3/REST"),  # Mailjet's path on Mailmodo
    ("mailjet", "https://api.mailjet.com/api/v1"),
    ("segment", "https://proxy.test/segment/v1"),  # Segment and CleverTap have no old form
])
def test_other_paths_are_prefixes_kept_as_written(dest, value):
    s = load_settings({BASE_URL_VARS[dest]: value})
    assert s.destination(dest).base_url == value and s.config_warnings == ()


@pytest.mark.parametrize("dest,value,write", [
    ("segment", "http://127.0.0.1:9000/?debug=1", "http://127.0.0.1:9000"),
    ("mailjet", "https://api.mailjet.com/v3/REST?x=1", "https://api.mailjet.com/v3/REST"),
    ("mailmodo", "https://proxy.test/mailmodo#api", "https://proxy.test/mailmodo"),
])
def test_a_query_or_fragment_is_refused_naming_the_variable(dest, value, write):
    var = BASE_URL_VARS[dest]
    with pytest.raises(ConfigError) as e:
        load_settings({var: value})
    assert str(e.value) == (f"{var} must be scheme://host[:port][/prefix], without a query or "
                            f"fragment; got {value!r}: write {var}={write}")


@pytest.mark.parametrize("dest", list(BASE_URL_VARS))
@pytest.mark.parametrize("value,write", [
    ("https://user:pa55-w0rd-XYZ@proxy.test/mailmodo", "https://proxy.test/mailmodo"),
    ("http://user:pa55-w0rd-XYZ@127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ("https://pa55-w0rd-XYZ@proxy.test", "https://proxy.test"),
])
def test_a_user_and_password_in_a_base_url_is_refused_without_echoing_it(dest, value, write):
    """httpx would send them as Basic auth instead of the destination's Authorization header,
    and a URL is logged unmasked."""
    var = BASE_URL_VARS[dest]
    with pytest.raises(ConfigError) as e:
        load_settings({var: value})
    message = str(e.value)
    assert message.startswith(f"{var} must not contain user:password@")
    assert message.endswith(f"write {var}={write}")
    assert "pa55-w0rd-XYZ" not in message and "user" not in message.split("write")[-1]


@pytest.mark.parametrize("value", ["api.mailmodo.com", "ftp://api.mailmodo.com", "https://",
                                   "http://host:notaport"])
def test_a_base_url_that_is_not_http_names_the_variable(value):
    with pytest.raises(ConfigError,
                       match=r"STREAMPROC_MAILMODO_BASE_URL.*scheme://host\[:port\]\[/prefix\]"):
        load_settings({"STREAMPROC_MAILMODO_BASE_URL": value})


def test_hold_seconds_default_and_the_old_grace_setting():
    assert load_settings({}).routing.hold_seconds == 3600.0
    old = load_settings({"STREAMPROC_TRACK_GRACE_SECONDS": "90"})
    assert old.routing.hold_seconds == 90.0
    assert any("STREAMPROC_HOLD_SECONDS" in w for w in old.config_warnings)
    both = load_settings({"STREAMPROC_TRACK_GRACE_SECONDS": "90", "STREAMPROC_HOLD_SECONDS": "0"})
    assert both.routing.hold_seconds == 0.0 and both.config_warnings == ()


def test_retry_budget_defaults_to_four_hours_and_refuses_zero():
    s = load_settings({}, strict=False)
    assert s.mailjet.delivery.retry_budget_s == 14400.0
    assert load_settings({"STREAMPROC_MAILJET_RETRY_BUDGET_S": "60"},
                         strict=False).mailjet.delivery.retry_budget_s == 60.0
    for bad in ("0", "-5", "four hours"):
        with pytest.raises(ConfigError, match="STREAMPROC_MAILJET_RETRY_BUDGET_S"):
            load_settings({"STREAMPROC_MAILJET_RETRY_BUDGET_S": bad}, strict=False)
