"""Session fixtures. The Kafka broker, in this order: an existing cluster named by
STREAMPROC_TEST_BOOTSTRAP_SERVERS; else testcontainers when a Docker engine answers; else
the local broker (Maven Central jars). No broker -> the broker tests fail, never skip."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

TESTCONTAINERS_IMAGE = "confluentinc/cp-kafka:7.9.0"


def _docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    existing = os.environ.get("STREAMPROC_TEST_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    problems = []
    if _docker_engine_answers():
        try:
            from testcontainers.community.kafka import KafkaContainer

            # testcontainers' KafkaContainer configures Confluent images; cp-kafka 7.9 is
            # Apache Kafka 3.9 in KRaft mode, the newest line its KRaft setup supports.
            with KafkaContainer(TESTCONTAINERS_IMAGE).with_kraft() as container:
                yield container.get_bootstrap_server()
            return
        except Exception as e:  # pragma: no cover - needs a Docker engine
            problems.append(f"testcontainers: {e}")
    from streamproc.dev.localkafka import LocalKafka, LocalKafkaError

    try:
        kafka = LocalKafka().start()
    except LocalKafkaError as e:
        problems.append(f"local broker: {e}")
        pytest.fail("no Kafka broker for the broker tests: set STREAMPROC_TEST_BOOTSTRAP_SERVERS, "
                    "run a Docker engine, or install Java 17 + Maven.\n" + "\n".join(problems))
    try:
        yield kafka.bootstrap
    finally:
        kafka.cleanup()


@pytest.fixture
def restore_logging():
    """Put the root logger's handlers and level, and the noisy libraries' levels, back after
    a test that configures logging (streamproc.core.logs.setup_logging)."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {n: logging.getLogger(n).level for n in ("aiokafka", "faust", "mode", "httpx")}
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    for n, lvl in noisy.items():
        logging.getLogger(n).setLevel(lvl)
