"""topics.yaml validation: the shipped file loads; errors name file, line and key."""

from pathlib import Path

import pytest

from streamproc.config.topology import load_topology
from streamproc.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_topology_loads():
    t = load_topology(ROOT / "topics.yaml")
    assert t.inputs["segment"].name == "segment.raw"
    assert t.destinations["mailmodo"].sink.name == "sink.mailmodo"
    assert t.internal["dead_letter"].retention_ms == 2592000000
    assert t.inputs["segment"].partitions == 6
    assert sorted(t.enabled) == ["clevertap", "mailjet", "mailmodo", "segment"]
    assert len(t.all_topics()) == 16
    assert t.internal["outcomes"].name == "streamproc.outcomes"
    assert t.internal["outcomes"].retention_ms == 7 * 24 * 3600 * 1000


def test_outcomes_topic_defaults_when_topics_yaml_omits_it(tmp_path):
    text = (ROOT / "topics.yaml").read_text()
    start = text.index("  outcomes:")
    end = text.index("destinations:")
    t = load_topology(_write(tmp_path, text[:start] + "\n" + text[end:]))
    spec = t.internal["outcomes"]
    assert (spec.name, spec.partitions, spec.retention_ms) == (
        "streamproc.outcomes", 6, 7 * 24 * 3600 * 1000)


def _write(tmp_path, text):
    p = tmp_path / "topics.yaml"
    p.write_text(text)
    return p


BASE = (ROOT / "topics.yaml").read_text()


def test_unknown_key_names_file_line_and_key(tmp_path):
    text = BASE.replace("  mailmodo:\n    name: mailmodo.activity.raw",
                        "  mailmodo:\n    name: mailmodo.activity.raw\n    partitons: 3")
    p = _write(tmp_path, text)
    line = text.splitlines().index("    partitons: 3") + 1
    with pytest.raises(ConfigError) as e:
        load_topology(p)
    assert f"{p}:{line}" in str(e.value)
    assert "'partitons'" in str(e.value)


def test_invalid_yaml_names_line(tmp_path):
    p = _write(tmp_path, "defaults:\n  partitions: 6\ninputs: [unclosed\n")
    with pytest.raises(ConfigError) as e:
        load_topology(p)
    assert str(p) in str(e.value) and "invalid YAML" in str(e.value)
    assert f"{p}:" in str(e.value)


@pytest.mark.parametrize("old,new,needle", [
    ("    batch_size: 100", "    batch_size: lots", "batch_size must be an integer"),
    ("  partitions: 6", "  partitions: 0", "partitions must be an integer >= 1"),
    ("  cleanup_policy: delete", "  cleanup_policy: forever", "cleanup_policy must be one of"),
    ("    enabled: true\n    batch_size: 100", "    enabled: yes please\n    batch_size: 100",
     "enabled must be true or false"),
    ("    name: sink.segment", "    name: sink.mailmodo", "used twice"),
    ("    name: segment.raw", "    name: segment raw!", "not a valid Kafka topic name"),
    ("  mailjet:\n    enabled: true", "  sendgrid:\n    enabled: true", "unknown key 'sendgrid'"),
])
def test_bad_values(tmp_path, old, new, needle):
    assert old in BASE
    p = _write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(ConfigError, match=needle):
        load_topology(p)


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read"):
        load_topology("/nonexistent/topics.yaml")


def test_prefix():
    t = load_topology(ROOT / "topics.yaml").with_prefix("dev.")
    assert t.destinations["segment"].dead_letter.name == "dev.dlq.segment"
