# Shared by the README's commands: make .venv (Python 3.11+) and install the project into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Python 3.11 or newer is needed as '$PYTHON' (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv ..." >&2
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml simulator/pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "installing the project, its simulator and their pinned dependencies into .venv (first run takes a few minutes) ..." >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  # The local extra brings Spark, the simulator (./simulator) and the report; constraints.txt pins them.
  .venv/bin/python -m pip install --quiet -c constraints.txt -e ./simulator -e ".[local,dev]"
  # The kerberos extra's GSSAPI binding needs krb5 headers; the tests mock GSSAPI, so skip it here.
  .venv/bin/python -m pip install --quiet --no-deps -c constraints.txt requests-kerberos
  rm -f .venv/.installed-* && touch "$stamp"
fi
