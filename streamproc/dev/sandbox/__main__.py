"""`python -m streamproc.dev.sandbox [--host H] [--port NAME=PORT ...] [--port-file F]`: run the
four sandbox APIs (free ports unless fixed) and print {name: base_url} as one JSON line."""

from __future__ import annotations

import argparse
import asyncio

from streamproc.dev.sandbox.run import FAKE_NAMES, serve_forever


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m streamproc.dev.sandbox",
                                     description="Run local sandbox versions of the four APIs.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", action="append", default=[], metavar="NAME=PORT",
                        help="fixed port for mailmodo|segment|clevertap|mailjet (default: free)")
    parser.add_argument("--port-file", help="also write the base URLs JSON to this file")
    args = parser.parse_args(argv)
    ports = {}
    for item in args.port:
        name, sep, port = item.partition("=")
        if not sep or not port.isdigit() or name.strip() not in FAKE_NAMES:
            parser.error(f"--port expects NAME=PORT with NAME in {'|'.join(FAKE_NAMES)}, got {item!r}")
        ports[name.strip()] = int(port)
    asyncio.run(serve_forever(args.host, ports, args.port_file))


if __name__ == "__main__":
    main()
