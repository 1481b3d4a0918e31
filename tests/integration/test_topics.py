"""`streamproc topics apply|check` on the real broker."""

import asyncio
import os
import subprocess
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamproc.config.topics import describe_partitions, reconcile, topic_configs

from harness import ROOT, topology_for, unique_prefix


def _cli(bootstrap, prefix, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPROC_")}
    env.update(STREAMPROC_KAFKA_BOOTSTRAP_SERVERS=bootstrap, STREAMPROC_TOPIC_PREFIX=prefix,
               STREAMPROC_TOPICS_FILE=str(ROOT / "topics.yaml"))
    return subprocess.run([sys.executable, "-m", "streamproc", "topics", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_apply_creates_exactly_topics_yaml_and_is_idempotent(kafka_bootstrap):
    prefix = unique_prefix()
    topo = topology_for(prefix)
    check = _cli(kafka_bootstrap, prefix, "check")
    assert check.returncode == 1 and "MISSING" in check.stdout

    first = _cli(kafka_bootstrap, prefix, "apply")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created") == len(topo.all_topics())

    kw = {"bootstrap_servers": kafka_bootstrap}

    async def inspect():
        admin = AIOKafkaAdminClient(**kw)
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(prefix)]
            return names, await describe_partitions(admin, names)
        finally:
            await admin.close()

    names, parts = asyncio.run(inspect())
    assert sorted(names) == sorted(t.name for t in topo.all_topics())
    for t in topo.all_topics():
        assert parts[t.name] == (t.partitions, t.replication_factor)
    configs = asyncio.run(topic_configs(kw, [t.name for t in topo.all_topics()]))
    for t in topo.all_topics():
        assert configs[t.name]["cleanup.policy"] == t.cleanup_policy
        assert configs[t.name]["retention.ms"] == str(t.retention_ms)
    assert configs[f"{prefix}dlq.mailmodo"]["retention.ms"] == "2592000000"

    again = _cli(kafka_bootstrap, prefix, "apply")
    assert again.returncode == 0 and "created" not in again.stdout
    assert again.stdout.count("ok ") == len(topo.all_topics())
    assert _cli(kafka_bootstrap, prefix, "check").returncode == 0


def test_partition_mismatch_is_reported(kafka_bootstrap):
    prefix = unique_prefix()
    topo = topology_for(prefix)
    wrong = topo.inputs["segment"].name

    async def make_wrong():
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(wrong, 2, 1)])
        finally:
            await admin.close()

    asyncio.run(make_wrong())
    res = _cli(kafka_bootstrap, prefix, "apply")
    assert res.returncode == 1
    assert f"MISMATCH  {wrong}: partitions 2, topics.yaml says 6" in res.stdout
    report = asyncio.run(reconcile(topo, {"bootstrap_servers": kafka_bootstrap}, create=False))
    assert not report.healthy and report.mismatched


def test_bad_topics_file_fails_at_start_naming_it(kafka_bootstrap, tmp_path):
    bad = tmp_path / "topics.yaml"
    bad.write_text((ROOT / "topics.yaml").read_text().replace("  partitions: 6", "  partitions: six"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPROC_")}
    env.update(STREAMPROC_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, STREAMPROC_TOPICS_FILE=str(bad))
    for cmd in (["topics", "apply"], ["worker"]):
        res = subprocess.run([sys.executable, "-m", "streamproc", *cmd], env=env,
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 2
        assert f"{bad}:" in res.stderr and "partitions must be an integer" in res.stderr


def test_bad_setting_fails_worker_at_start_naming_it(kafka_bootstrap):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPROC_")}
    env.update(STREAMPROC_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
               STREAMPROC_TOPICS_FILE=str(ROOT / "topics.yaml"),
               STREAMPROC_KAFKA_SECURITY_PROTOCOL="SASL_SSL")
    res = subprocess.run([sys.executable, "-m", "streamproc", "worker"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "STREAMPROC_KAFKA_SASL_USERNAME" in res.stderr
    env.pop("STREAMPROC_KAFKA_SECURITY_PROTOCOL")
    res = subprocess.run([sys.executable, "-m", "streamproc", "worker"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "STREAMPROC_MAILMODO_API_KEY" in res.stderr
