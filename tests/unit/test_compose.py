"""docker-compose.yml cannot run here (no Docker engine): check it stays valid and wired to
the settings the code reads."""

import re
from pathlib import Path

import yaml

from streamproc.dev.localkafka import KAFKA_VERSION

ROOT = Path(__file__).resolve().parents[2]


def _known_settings() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return {line.split("=", 1)[0].lstrip("# ").strip() for line in text.splitlines()
            if line.lstrip("# ").startswith("STREAMPROC_") and "=" in line}


def test_compose_services_and_environment():
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    assert set(services) == {"kafka", "topics", "worker"}
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert services["topics"]["command"] == ["topics", "apply"]
    assert services["worker"]["command"] == ["worker"]
    for name in ("topics", "worker"):
        assert services[name]["build"] == "."
        env = services[name]["environment"]
        unknown = set(env) - _known_settings()
        assert not unknown, f"{name} sets variables the code does not read: {unknown}"
        assert env["STREAMPROC_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert services["worker"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    # every ${VAR} used is a known setting
    used = set(re.findall(r"\$\{(STREAMPROC_[A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    assert used <= _known_settings()


def test_dockerfile_runs_the_cli():
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["streamproc"]' in text and 'CMD ["worker"]' in text
    assert "STREAMPROC_DATA_DIR=/data" in text
