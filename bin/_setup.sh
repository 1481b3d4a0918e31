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
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing streamproc${EXTRAS:+[$EXTRAS]} into .venv" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  "$VENV/bin/python" -m pip install --quiet -e ".${EXTRAS:+[$EXTRAS]}" >&2
  touch "$stamp"
fi
if [ -z "${STREAMPROC_KAFKA_BOOTSTRAP_SERVERS:-}${STREAMPROC_TEST_BOOTSTRAP_SERVERS:-}" ]; then
  "$VENV/bin/streamproc" kafka fetch >/dev/null
fi
