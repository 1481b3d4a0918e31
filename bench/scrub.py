"""The outcome scrubber's time on adversarial response bodies (it runs on the worker's event
loop for every failed request): best of 5, in ms, per body, at the default body limit (500,
2,000 characters scanned) and at the largest (2,000, 8,000 scanned).

    python -m bench.scrub [--base REV]

--base REV: also the scrubber of another revision (git show REV:streamproc/worker/scrub.py,
loaded beside this checkout's), on the same bodies, in the same run. Then the log filter's
email mask (streamproc/core/logs.py, every log line) on the same bodies, with --base also
that of REV."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

BODIES: dict[str, Callable[[int], str]] = {
    "one run of letters": lambda n: "a" * n,
    "dotted run": lambda n: "a." * (n // 2),
    "JSON-escaped text, no @": lambda n: json.dumps({"error": "数据格式错误" * (n // 36)}),
    "escaped-quote secret field": lambda n: '{\\"api_key\\":\\"' + "a" * n,
    "words and addresses": lambda n: "contact jane.doe@example.com now, " * (n // 34),
    "query string of addresses": lambda n: "&".join(f"to{i}=u{i}@ex.com" for i in range(n // 14)),
    "URL-like run": lambda n: "http://a:b" * (n // 10),
    "quotes and @": lambda n: "'a@" * (n // 3),
    "Authorization without end": lambda n: '\\"Authorization\\":\\"' + "x" * n,
    "XML-like tags": lambda n: ("<" + "a" * 50) * (n // 51),
    "one unclosed tag": lambda n: "<" + "a" * n,
}


def best_ms(fn: Callable[[], Any], reps: int = 5) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return round(best * 1000, 2)


def _module_at(rev: str, path_in_repo: str = "streamproc/worker/scrub.py") -> Any:
    src = subprocess.run(["git", "show", f"{rev}:{path_in_repo}"], check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "scrub_base.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("scrub_base", path)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def main(argv: list[str] | None = None) -> int:
    from streamproc.worker import scrub

    ap = argparse.ArgumentParser(prog="python -m bench.scrub", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base")
    args = ap.parse_args(argv)
    sides = {"this": scrub, **({args.base: _module_at(args.base)} if args.base else {})}
    for limit in (500, 2000):
        for name, make in BODIES.items():
            body = make(limit * 4)
            figures = {side: best_ms(lambda m=mod: m.Scrubber(["s3cr3t-key"], limit=limit)(body))
                       for side, mod in sides.items()}
            print(f"limit {limit:>4}  {name:<28} {len(body):>5} chars  ms: {figures}")
    from streamproc.core import logs

    filters = {"this": logs, **({args.base: _module_at(args.base, "streamproc/core/logs.py")}
                                if args.base else {})}
    for name, make in BODIES.items():
        body = make(8000)
        figures = {side: best_ms(lambda m=mod: m.mask_emails(body))
                   for side, mod in filters.items()}
        print(f"log filter  {name:<28} {len(body):>5} chars  ms: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
