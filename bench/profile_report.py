"""Summarise a worker's cProfile stats (BENCH_PROFILE=<file>, or bench.routing --profile <file>):
own time per layer (faust, mode, aiokafka, asyncio, streamproc, RocksDB, sockets, idle) and the
top functions by own and by cumulative time.

    python -m bench.profile_report <file> [--top 30]"""

from __future__ import annotations

import argparse
import collections
import pstats
import sys


def layer(filename: str, name: str) -> str:
    for key, label in (("site-packages/faust/", "faust"), ("site-packages/mode/", "mode"),
                       ("site-packages/aiokafka/", "aiokafka"), ("asyncio", "asyncio"),
                       ("/streamproc/", "streamproc"), ("prometheus", "prometheus")):
        if key in filename:
            return label
    if filename == "~":
        if "epoll" in name:
            return "idle (epoll)"
        if "socket" in name:
            return "socket syscalls"
        if "Rdict" in name:
            return "rocksdb"
        if "orjson" in name:
            return "orjson"
        return "builtins"
    return "other"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile_report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args(argv)
    stats = pstats.Stats(args.file)
    own: collections.Counter[str] = collections.Counter()
    for (fn, _line, name), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        own[layer(fn, name)] += tt
    total = sum(own.values()) or 1.0
    print("own time by layer (profiler overhead inflates every layer):")
    for label, t in own.most_common():
        print(f"  {label:18s} {t:8.2f}s {100 * t / total:5.1f}%")
    print()
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumtime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
