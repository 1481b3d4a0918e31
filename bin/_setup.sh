# Sourced by bin/run and bin/test: a project virtualenv with streamproc installed, and the
# local Kafka jars fetched once (Maven Central, cached under ~/.cache/streamproc).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
EXTRAS="${1:-}"
stamp="$VENV/.installed${EXTRAS:+-$EXTRAS}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating virtualenv .venv" >&2
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "==> installing streamproc${EXTRAS:+[$EXTRAS]} into .venv" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  # constraints.txt: the one lock (exact pins for the whole tree), shared with the Dockerfile and CI.
  "$VENV/bin/python" -m pip install --quiet -c "$ROOT/constraints.txt" -e ".${EXTRAS:+[$EXTRAS]}" >&2
  touch "$stamp"
fi
# The status page test renders the page in headless Chromium (Debian's package): install it
# for the test extras when we may (root with apt-get); the test fails with a message without it.
if [ "$EXTRAS" = "test" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 \
    && ! command -v chromium >/dev/null 2>&1; then
  echo "==> installing chromium (apt-get) for the status page test" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >&2 \
    || echo "warning: could not install chromium; the status page test will fail" >&2
fi
# The alert rule tests (tests/unit/test_ops_rules.py) run promtool, from Debian's prometheus
# package (without its recommends: only promtool is used): install it likewise; they fail with
# a message without it.
if [ "$EXTRAS" = "test" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 \
    && ! command -v promtool >/dev/null 2>&1; then
  echo "==> installing promtool (apt-get prometheus) for the alert rule tests" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends prometheus; } >&2 \
    || echo "warning: could not install promtool; the alert rule tests will fail" >&2
fi
if [ -z "${STREAMPROC_KAFKA_BOOTSTRAP_SERVERS:-}${STREAMPROC_TEST_BOOTSTRAP_SERVERS:-}" ]; then
  "$VENV/bin/streamproc" kafka fetch >/dev/null
fi
