"""Provisioning the local broker's jars: Apache Kafka (pinned version) and its logging jars
from Maven Central with Maven, once, into a cache (~/.cache/streamproc)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

KAFKA_VERSION = "4.3.0"  # pinned; override with STREAMPROC_KAFKA_VERSION
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.24.3"
SLF4J_VERSION = "2.0.17"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>streamproc.local</groupId><artifactId>kafka-broker</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId>
      <version>{slf4j}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

class LocalKafkaError(RuntimeError):
    """The local broker could not be provisioned or started (the message says why)."""


def kafka_version() -> str:
    return os.environ.get("STREAMPROC_KAFKA_VERSION", KAFKA_VERSION)


def cache_dir() -> Path:
    base = os.environ.get("STREAMPROC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "streamproc")
    return Path(base)


def ensure_jars(version: str | None = None, *, quiet: bool = True) -> Path:
    """The folder of broker jars for `version`, fetched with Maven on first use only.
    Safe to call from concurrent processes (a file lock serialises the download)."""
    version = version or kafka_version()
    target = cache_dir() / f"kafka-{version}" / "libs"
    if (target / ".complete").exists():
        return target
    if shutil.which("mvn") is None:
        raise LocalKafkaError("Maven (mvn) is not on PATH: it is needed once to fetch the Kafka jars")
    if shutil.which("java") is None:
        raise LocalKafkaError("java is not on PATH: the local Kafka broker needs Java 17+")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").exists():
            return target
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            pom = Path(tmp) / "pom.xml"
            pom.write_text(_POM.format(kafka=version, scala=SCALA_VERSION, log4j=LOG4J_VERSION,
                                       slf4j=SLF4J_VERSION))
            out = Path(tmp) / "libs"
            cmd = ["mvn", "-B", "-f", str(pom), "dependency:copy-dependencies",
                   f"-DoutputDirectory={out}", "-DincludeScope=runtime"]
            if quiet:
                cmd.insert(1, "-q")
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise LocalKafkaError(
                    f"fetching Apache Kafka {version} with Maven failed:\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
            (out / ".complete").write_text(version)
            if target.exists():
                shutil.rmtree(target)
            out.rename(target)
    return target
