"""The worker's log file says what happened (issue 16): a real worker process with
LOG_FORMAT=json on the session broker writes the periodic summary with its numbers as a
structured `summary` field, logs no coordinator-not-available error at ERROR while the broker
finds the group coordinator, and contains no terminal escape sequence after it stopped."""

from __future__ import annotations

import orjson

from harness import produce, wait_for

IDENTIFIES = 4


def identify(n: int, email: str | None) -> dict:
    traits = {"email": email} if email else {"firstName": f"U{n}"}
    return {"type": "identify", "userId": f"logs-user-{n}", "messageId": f"logs-{n}",
            "traits": traits, "timestamp": "2026-11-20T10:00:00Z"}


def records(path) -> list[dict]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            out.append({"unparsed": line})
    return out


def test_summary_lines_no_coordinator_errors_no_escape_sequences(stack):
    w = stack.worker(STREAMPROC_LOG_FORMAT="json", STREAMPROC_LOG_SUMMARY_INTERVAL_S="1")
    w.wait_ready()
    events = [(f"logs-user-{n}", identify(n, f"logs.user{n}@example.com"))
              for n in range(IDENTIFIES)]
    events.append(("logs-user-x", identify(99, None)))  # dropped: missing_email
    produce(stack.bootstrap, stack.topic("segment"), events)

    def done_summary() -> dict | None:
        """The latest summary once it counts every delivery and one came before it."""
        summaries = [r["summary"] for r in records(w.log_path) if "summary" in r]
        if len(summaries) >= 2 and summaries[-1]["total"]["delivered"].get("mailmodo", 0) \
                >= IDENTIFIES and summaries[-1]["total"]["delivered"].get("mailjet", 0) \
                >= IDENTIFIES:
            return summaries[-1]
        return None

    s = wait_for(done_summary, timeout=120, interval=1.0, what="a summary with the deliveries")
    total = s["total"]
    assert total["in"] == IDENTIFIES + 1
    assert total["routed"]["mailmodo"] == total["routed"]["mailjet"] == IDENTIFIES
    assert total["dropped"]["missing_email"] >= 1
    assert total["dead_lettered"] == {"ingest": 0, "delivery": 0}
    assert isinstance(s["lag"], int) and s["interval_s"] > 0
    assert w.stop(timeout=60) == 0

    raw = w.log_path.read_text(errors="replace")
    assert "\x1b[" not in raw, [line for line in raw.splitlines() if "\x1b[" in line]
    logged = records(w.log_path)
    assert not [r for r in logged if "unparsed" in r], [r for r in logged if "unparsed" in r]
    summaries = [r for r in logged if "summary" in r]
    assert all(r["level"] == "INFO" and r["logger"] == "streamproc.summary"
               and r["msg"].startswith("summary last ") for r in summaries)
    assert len(summaries) >= 2
    # the intervals add up to the totals (one worker, nothing else counted in between)
    assert sum(r["summary"]["interval"]["in"] for r in summaries) == summaries[-1][
        "summary"]["total"]["in"]
    coordinator = [r for r in logged if "NotAvailable" in r.get("msg", "")
                   or "NotCoordinator" in r.get("msg", "")
                   or "not started or not valid" in r.get("msg", "")]
    assert not [r for r in coordinator if r["level"] not in ("INFO", "DEBUG")], coordinator
    print(f"{len(summaries)} summary lines; coordinator records: {coordinator}")
