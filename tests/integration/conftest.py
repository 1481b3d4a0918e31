"""Integration fixtures: the sandbox APIs over real sockets and worker processes that are
always stopped (or killed) at the end of a test."""

from __future__ import annotations

import pytest

from streamproc.dev.sandbox import SandboxServer, sandbox_env

from harness import WorkerProcess, apply_topics, topology_for, unique_prefix


@pytest.fixture
def sandbox():
    with SandboxServer() as server:
        yield server


@pytest.fixture
def stack(kafka_bootstrap, sandbox):
    """A fresh topic prefix with its topics applied, and a factory of workers pointed at the
    sandbox APIs. Workers still running at the end are stopped."""

    class Stack:
        def __init__(self) -> None:
            self.bootstrap = kafka_bootstrap
            self.prefix = unique_prefix()
            self.topology = topology_for(self.prefix)
            self.sandbox = sandbox
            self.env = sandbox_env(sandbox.base_urls)
            self.workers: list[WorkerProcess] = []
            apply_topics(kafka_bootstrap, self.topology)

        def topic(self, role: str) -> str:
            t = self.topology
            if role in t.inputs:
                return t.inputs[role].name
            if role in t.internal:
                return t.internal[role].name
            kind, dest = role.split(".")
            d = t.destinations[dest]
            return d.sink.name if kind == "sink" else d.dead_letter.name

        def worker(self, name: str = "w1", data_dir: str | None = None, web_port: int = 0,
                   **env: str) -> WorkerProcess:
            w = WorkerProcess(kafka_bootstrap, self.prefix, env_extra={**self.env, **env},
                              name=name, data_dir=data_dir, web_port=web_port)
            self.workers.append(w)
            return w.start()

    s = Stack()
    yield s
    for w in s.workers:
        w.stop_or_kill()


@pytest.fixture(scope="session")
def secure_kafka():
    """A second local broker, secured (streamproc.dev.localkafka_secure): SASL_SSL with SCRAM-SHA-512
    users admin (super user), worker, topics, operator and nobody, ACLs enforced. Started only
    by the tests that use it."""
    from streamproc.dev.localkafka import LocalKafka
    from streamproc.dev.localkafka_secure import Secure

    kafka = LocalKafka(secure=Secure()).start()
    try:
        yield kafka
    finally:
        kafka.cleanup()
