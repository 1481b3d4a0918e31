"""Operating a worker, on the real broker with real worker processes and the sandbox APIs:
the Prometheus numbers move as events flow (and consumer lag drains back to 0), /status.json
and the status page rendered by headless Chromium show the same real numbers, and /ready goes
200 -> 503 -> 200 on the running worker while a second worker joins the group.

One worker is shared by the three tests of this module (the readiness test runs last, since
it adds a second worker to the group)."""

from __future__ import annotations

import html.parser
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamproc.dev.sandbox import SandboxServer, sandbox_env

from harness import WorkerProcess, apply_topics, produce, topology_for, unique_prefix, wait_for

CHROMIUM = "/usr/bin/chromium"
IDENTIFIES_WITH_EMAIL = 5
SOURCE_TOPICS = 10  # 4 inputs, by-user, by-contact, 4 sinks (topics.yaml)
PARTITIONS = 6


# ------------------------------------------------------------------------------ helpers


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text)
            for s in fam.samples]


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when there is none)."""
    return sum(v for n, ls, v in samples(text)
               if n == name and all(ls.get(k) == want for k, want in labels.items()))


def label_values(text: str, name: str, label: str, **labels: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for n, ls, v in samples(text):
        if n == name and all(ls.get(k) == want for k, want in labels.items()):
            out[ls[label]] = out.get(ls[label], 0.0) + v
    return out


def identify(user: str, email: str | None, n: int) -> dict:
    traits = {"firstName": f"User{n}"}
    if email:
        traits["email"] = email
    return {"type": "identify", "userId": user, "messageId": f"op-{n}", "traits": traits,
            "timestamp": "2026-11-20T10:00:00Z"}


class Op:
    """A topic prefix with its topics, the sandbox APIs and one running worker."""

    def __init__(self, bootstrap: str, sandbox: SandboxServer) -> None:
        self.bootstrap = bootstrap
        self.sandbox = sandbox
        self.prefix = unique_prefix()
        self.topology = topology_for(self.prefix)
        apply_topics(bootstrap, self.topology)
        self.workers: list[WorkerProcess] = []
        self.before = ""

    def worker(self, name: str) -> WorkerProcess:
        w = WorkerProcess(self.bootstrap, self.prefix,
                          env_extra=sandbox_env(self.sandbox.base_urls), name=name)
        self.workers.append(w)
        return w.start()

    def topic(self, role: str) -> str:
        return self.topology.inputs[role].name if role in self.topology.inputs \
            else self.topology.internal[role].name


@pytest.fixture(scope="module")
def op(kafka_bootstrap):
    """w1 ready; 5 identifies with an email and 1 without produced and fully delivered."""
    with SandboxServer() as sandbox:
        o = Op(kafka_bootstrap, sandbox)
        try:
            w1 = o.worker("w1")
            w1.wait_ready()
            o.before = w1.metrics()
            events = [(f"op-user-{n}", identify(f"op-user-{n}", f"Op.User{n}@Example.com", n))
                      for n in range(IDENTIFIES_WITH_EMAIL)]
            events.append(("op-user-noemail", identify("op-user-noemail", None, 99)))
            produce(kafka_bootstrap, o.topic("segment"), events)

            def settled() -> str | None:
                text = w1.metrics()
                lags = label_values(text, "streamproc_consumer_lag", "topic")
                done = (value(text, "streamproc_delivered_total", destination="mailmodo")
                        >= IDENTIFIES_WITH_EMAIL
                        and value(text, "streamproc_delivered_total", destination="mailjet")
                        >= IDENTIFIES_WITH_EMAIL
                        and len(lags) == SOURCE_TOPICS and not any(lags.values()))
                return text if done else None

            wait_for(settled, timeout=90, interval=0.5, what="delivery done and lag 0")
            yield o
        finally:
            for w in o.workers:
                if w.proc is not None:
                    try:
                        w.stop(timeout=30)
                    except AssertionError:
                        w.kill()


# ------------------------------------------------------------------------------ metrics


def test_metrics_move_as_events_flow(op):
    w1 = op.workers[0]
    before = op.before
    assert value(before, "streamproc_events_in_total") == 0
    assert value(before, "streamproc_routed_total") == 0
    # right after start nothing is behind (partitions appear once their first fetch is done)
    assert value(before, "streamproc_consumer_lag") == 0

    text = w1.metrics()
    n = IDENTIFIES_WITH_EMAIL
    assert value(text, "streamproc_events_in_total", source="segment", type="identify") == n + 1
    assert value(text, "streamproc_routed_total", destination="mailmodo") == n
    assert value(text, "streamproc_routed_total", destination="mailjet") == n
    assert value(text, "streamproc_dropped_total", source="segment", destination="mailmodo",
                 reason="missing_email") == 1
    assert value(text, "streamproc_dropped_total", source="segment", destination="mailjet",
                 reason="missing_email") == 1
    # delivered exactly once each (the ledger), all 2xx, nothing retried or dead-lettered
    assert value(text, "streamproc_delivered_total", destination="mailmodo",
                 status_class="2xx") == n
    assert value(text, "streamproc_delivered_total", destination="mailjet",
                 status_class="2xx") == n
    assert value(text, "streamproc_retried_total") == 0
    assert value(text, "streamproc_dead_lettered_total") == 0
    assert value(text, "streamproc_auth_paused", destination="mailmodo") == 0
    # the sandboxes really got them
    assert sorted(op.sandbox["mailmodo"].contacts) == sorted(
        f"Op.User{i}@Example.com" for i in range(n))
    assert len(op.sandbox["mailjet"].contacts) == n
    # lag per topic-partition drained to 0, for every topic the agents read
    by_user = label_values(text, "streamproc_consumer_lag", "partition",
                           topic=op.topic("by_user"))
    assert sorted(by_user) == [str(p) for p in range(PARTITIONS)] and set(by_user.values()) == {0}
    lag = label_values(text, "streamproc_consumer_lag", "topic")
    assert len(lag) == SOURCE_TOPICS and set(lag.values()) == {0}, lag
    # table sizes (RocksDB's estimate, exact here: every key was written once): one user per
    # identify, one contact per email, one ledger entry per delivered record
    tables = label_values(text, "streamproc_table_keys", "table")
    assert tables == {"known-users": n + 1, "contacts": n, "ledger-mailmodo": n,
                      "ledger-mailjet": n, "ledger-segment": 0, "ledger-clevertap": 0}, tables
    # latency and request histograms observed the deliveries
    assert value(text, "streamproc_delivery_latency_seconds_count", destination="mailmodo") == n
    assert value(text, "streamproc_requests_total", destination="mailmodo") >= 1


# ------------------------------------------------------------------------------ status page


class _Dom(html.parser.HTMLParser):
    """Text of the elements that carry data-* attributes, keyed by their ancestors' data-*."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[dict[str, str]] = []
        self.cells: dict[tuple[str, str], str] = {}  # (row key, data-field) -> text
        self.attrs_by_id: dict[str, dict[str, str]] = {}
        self.polylines: dict[str, dict[str, str]] = {}
        self._text: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.attrs_by_id[a["id"]] = a
        if tag == "polyline" and "data-dest" in a:
            self.polylines[a["data-dest"]] = a
        self.stack.append({"tag": tag, **a})
        if "data-field" in a:
            self._text = []

    def handle_endtag(self, tag):
        if not self.stack:
            return
        el = self.stack.pop()
        if "data-field" in el and self._text is not None:
            row = next((s.get("data-dest") or s.get("data-topic") or s.get("data-table")
                        or s.get("data-key") for s in reversed(self.stack)
                        if s.get("tag") == "tr"), "")
            self.cells[(row, el["data-field"])] = "".join(self._text).strip()
            self._text = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():  # fail, never skip: the page must be proven to render
        pytest.fail(f"{CHROMIUM} is missing: the status page test needs Debian's chromium "
                    "package (apt-get install -y chromium; ./bin/test installs it when run "
                    "as root)", pytrace=False)


def _chromium_dump(url: str, screenshot: Path | None = None) -> str:
    _require_chromium()
    profile = tempfile.mkdtemp(prefix="streamproc-chromium-")
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--virtual-time-budget=6000"]
    try:
        r = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True,
                           timeout=90)
        assert r.returncode == 0 and "<html" in r.stdout, (r.returncode, r.stderr[-2000:])
        if screenshot is not None:
            s = subprocess.run([*base, "--window-size=1280,900",
                                f"--screenshot={screenshot}", url],
                               capture_output=True, text=True, timeout=90)
            assert s.returncode == 0 and screenshot.exists(), s.stderr[-2000:]
        return r.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_status_json_and_page_in_chromium(op, tmp_path):
    _require_chromium()
    w1 = op.workers[0]
    n = IDENTIFIES_WITH_EMAIL
    doc = httpx.get(w1.url + "/status.json", timeout=5).json()
    mm = doc["destinations"]["mailmodo"]
    mj = doc["destinations"]["mailjet"]
    received = len(op.sandbox["mailmodo"].contacts)
    assert received == n
    assert (mm["routed"], mm["delivered"], mm["retried"], mm["failed"], mm["dead_lettered"]) == (
        n, n, 0, 0, 0)
    assert mm["dropped"] == {"missing_email": 1} and mm["dropped_total"] == 1
    assert (mj["routed"], mj["delivered"], mj["dropped"]) == (n, n, {"missing_email": 1})
    assert mm["auth_paused"] is False
    assert mm["lag"] == {mm["sink_topic"]: 0}
    assert mm["requests"] >= 1 and mm["requests_per_s"] > 0  # sent within the last minute
    worker = doc["worker"]
    assert worker["ready"] is True
    assert worker["assigned_partitions"] == SOURCE_TOPICS * PARTITIONS
    assert worker["partitions"][op.topic("by_user")] == list(range(PARTITIONS))
    assert set(worker["lag"].values()) == {0}
    assert worker["events_in"] == {"segment/identify": n + 1}
    # the timer samples every 2 s: the deliveries show up as a delivered/s point
    hist = wait_for(lambda: (lambda h: h if any(h["delivered_per_s"]["mailmodo"]) else None)(
        httpx.get(w1.url + "/status.json", timeout=5).json()["history"]),
        timeout=15, what="a delivered/s sample for mailmodo")
    assert hist["interval_s"] == 2.0
    assert set(hist["delivered_per_s"]) == set(op.topology.destinations)
    rates, ts = hist["delivered_per_s"]["mailmodo"], hist["t"]
    assert len(rates) == len(ts) and all(b - a == pytest.approx(2.0, abs=1.0)
                                         for a, b in zip(ts, ts[1:]))

    page = httpx.get(w1.url + "/status", timeout=5)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>" in page.text  # inline: no CDN, the page loads nothing from elsewhere
    assert re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page.text) is None

    shot = tmp_path / "status.png"
    dom_text = _chromium_dump(w1.url + "/status", screenshot=shot)
    dom = _Dom()
    dom.feed(dom_text)
    after = httpx.get(w1.url + "/status.json", timeout=5).json()  # nothing moved meanwhile
    assert after["destinations"]["mailmodo"]["delivered"] == n

    assert dom.attrs_by_id["ready"]["data-ready"] == "true", dom_text[:3000]
    assert int(dom.attrs_by_id["updated"]["data-polls"]) >= 2  # polled and re-rendered
    assert dom.attrs_by_id["partitions"]["data-count"] == str(SOURCE_TOPICS * PARTITIONS)
    cells = dom.cells
    assert cells[("mailmodo", "delivered")] == str(n) == str(mm["delivered"]) == str(received)
    assert cells[("mailmodo", "routed")] == str(n)
    assert cells[("mailmodo", "dead_lettered")] == "0"
    assert cells[("mailmodo", "dropped_total")] == "1"
    assert cells[("mailmodo", "dropped")] == "missing_email: 1"
    assert cells[("mailmodo", "auth_paused")] == "ok"
    assert cells[("mailjet", "delivered")] == str(mj["delivered"]) == str(n)
    assert cells[("clevertap", "delivered")] == "0"
    assert cells[(op.topic("by_user"), "lag")] == "0"
    assert cells[("segment/identify", "events")] == str(n + 1)
    assert cells[("known-users", "keys")] == str(after["worker"]["tables"]["known-users"])
    # the chart: one line per destination, drawn from the sampled history
    assert set(dom.polylines) == set(op.topology.destinations)
    assert int(dom.polylines["mailmodo"]["data-points"]) >= 1
    assert shot.stat().st_size > 5000


# ------------------------------------------------------------------------------ readiness


def test_ready_flips_while_a_second_worker_joins(op):
    w1 = op.workers[0]
    observed: list[tuple[float, int | str, str]] = []
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                try:
                    r = client.get(w1.url + "/ready")
                    observed.append((time.monotonic(), r.status_code, r.json().get("detail", "")))
                except httpx.HTTPError as e:
                    observed.append((time.monotonic(), "error", repr(e)))
                # no sleep: a rebalance that moves no table state is over in ~100 ms

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        wait_for(lambda: len(observed) >= 5, timeout=10, what="first readiness polls")
        w2 = op.worker("w2")
        w2.wait_ready()

        def settled() -> bool:  # w1 ready again, for the last 20 polls
            tail = [s for _, s, _ in observed[-20:]]
            return len(tail) == 20 and set(tail) == {200} and any(
                s == 503 for _, s, _ in observed)

        wait_for(settled, timeout=90, interval=0.2, what="w1 ready again after the rebalance")
    finally:
        stop.set()
        poller.join(10)

    runs: list[int | str] = []
    for _, status, _ in observed:
        if not runs or runs[-1] != status:
            runs.append(status)
    details = sorted({d for _, s, d in observed if s == 503})
    assert "error" not in runs, [o for o in observed if o[1] == "error"][:3]
    assert runs[0] == 200 and runs[-1] == 200 and 503 in runs, runs
    assert set(runs) == {200, 503}, runs
    assert set(details) <= {"rebalancing", "recovering tables", "no partitions assigned"}, details
    not_ready_s = sum(b[0] - a[0] for a, b in zip(observed, observed[1:]) if a[1] == 503)
    assert not_ready_s > 0

    # the group now shares the partitions: both ready, together they hold all of them
    d1 = httpx.get(w1.url + "/status.json", timeout=5).json()["worker"]
    d2 = httpx.get(w2.url + "/status.json", timeout=5).json()["worker"]
    assert d1["ready"] and d2["ready"]
    assert d1["rebalances"] >= 2  # the initial assignment and this one
    assert 0 < d1["assigned_partitions"] < SOURCE_TOPICS * PARTITIONS
    assert d1["assigned_partitions"] + d2["assigned_partitions"] == SOURCE_TOPICS * PARTITIONS
