"""Runtime: what the agents and the HTTP pages of one app share (settings, topology, metrics,
the output producer, tables and topics). create_app builds it as `app.streamproc`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import faust

from streamproc.config.settings import Settings
from streamproc.config.topology import Topology
from streamproc.core.metrics import Metrics
from streamproc.worker.output import OutputProducer


@dataclass
class Runtime:
    """What the agents share: settings, topology, the output producer, metrics, tables."""

    app: faust.App
    settings: Settings
    topology: Topology
    metrics: Metrics
    output: OutputProducer
    tables: dict[str, Any] = field(default_factory=dict)
    topics: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
