"""Local sandbox versions of the Mailmodo, Segment, CleverTap and Mailjet APIs on 127.0.0.1:
used by integration tests (assert what was received, script faults) and by demo mode."""

from streamproc.dev.sandbox.clevertap import CleverTapFake
from streamproc.dev.sandbox.mailjet import MailjetFake
from streamproc.dev.sandbox.mailmodo import MailmodoFake
from streamproc.dev.sandbox.segment import SegmentFake
from streamproc.dev.sandbox.run import SandboxServer, running, serve_forever
from streamproc.dev.sandbox.server import Fault, FakeApi, RecordedRequest
from streamproc.dev.sandbox import clevertap, mailjet, mailmodo, segment

# Credentials the sandboxes accept by default (demo mode configures the clients with these).
SANDBOX_CREDENTIALS = {
    "mailmodo": {"api_key": mailmodo.DEFAULT_API_KEY},
    "segment": {"write_key": segment.DEFAULT_WRITE_KEY},
    "clevertap": {"account_id": clevertap.DEFAULT_ACCOUNT_ID, "passcode": clevertap.DEFAULT_PASSCODE},
    "mailjet": {"api_key": mailjet.DEFAULT_API_KEY, "api_secret": mailjet.DEFAULT_API_SECRET,
                "list_id": mailjet.DEFAULT_LIST_ID},
}

__all__ = [
    "CleverTapFake", "Fault", "FakeApi", "MailjetFake", "MailmodoFake", "RecordedRequest",
    "SANDBOX_CREDENTIALS", "SandboxServer", "SegmentFake", "running", "serve_forever",
]


def sandbox_env(urls: dict[str, str], names: list[str] | None = None) -> dict[str, str]:
    """STREAMPROC_* variables pointing the named destinations at running sandboxes."""
    env: dict[str, str] = {}
    for name in names or list(urls):
        env[f"STREAMPROC_{name.upper()}_BASE_URL"] = urls[name]
        for field_name, value in SANDBOX_CREDENTIALS[name].items():
            env[f"STREAMPROC_{name.upper()}_{field_name.upper()}"] = value
    return env


def start_sandbox(names: list[str]) -> tuple[SandboxServer, dict[str, str]]:
    """Start sandboxes for `names` in a background thread; returns (server, env)."""
    fakes = {"mailmodo": MailmodoFake, "segment": SegmentFake, "clevertap": CleverTapFake,
             "mailjet": MailjetFake}
    server = SandboxServer(*(fakes[n]() for n in names))
    urls = server.start()
    return server, sandbox_env(urls, names)
