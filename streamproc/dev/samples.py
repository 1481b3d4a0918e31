"""`streamproc send`: produces the bundled sample events (streamproc/data/samples.jsonl) or a
JSONL file of {input, key, value | value_text, phase?} lines to the raw topics. Phase 2 lines
(email activity) are meant to follow phase 1 (identifies, triggers) once it was routed."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streamproc.config.kafka import client_kwargs
from streamproc.config.settings import Settings
from streamproc.config.topology import Topology
from streamproc.core.errors import ConfigError


def load_samples(path: str | None = None) -> list[dict[str, Any]]:
    text = (Path(path).read_text() if path
            else resources.files("streamproc").joinpath("data/samples.jsonl").read_text())
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError as e:
                raise ConfigError(f"{path or 'samples.jsonl'}:{n}: not JSON ({e})") from None
    return out


def encode_sample(item: dict[str, Any]) -> tuple[bytes | None, bytes]:
    key = item.get("key")
    value = (item["value_text"].encode() if "value_text" in item else orjson.dumps(item["value"]))
    return (key.encode() if key else None), value


async def send_samples(settings: Settings, topology: Topology, path: str | None = None,
                       phase: int | None = None) -> dict[str, int]:
    items = [i for i in load_samples(path) if phase is None or i.get("phase", 1) == phase]
    producer = AIOKafkaProducer(**client_kwargs(settings.kafka), acks="all")
    await producer.start()
    counts: dict[str, int] = {}
    try:
        futs = []
        for item in items:
            spec = topology.inputs.get(item.get("input", ""))
            if spec is None:
                raise ConfigError(f"sample input {item.get('input')!r} is not one of "
                                  f"{', '.join(topology.inputs)}")
            key, value = encode_sample(item)
            futs.append(await producer.send(spec.name, value=value, key=key))
            counts[spec.name] = counts.get(spec.name, 0) + 1
        for f in futs:
            await f
    finally:
        await producer.stop()
    return counts
