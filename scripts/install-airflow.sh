#!/usr/bin/env bash
# Install Apache Airflow 3 into the project's virtualenv (idempotent).
#
# Airflow documents installing with a constraints file that pins every
# transitive dependency. Its published files live outside PyPI, which this
# project's machines cannot reach, so the project's own constraints.txt plays
# that role: it pins datamove's dependencies and Airflow's together, and pip
# resolves Airflow against it. The requirement is the `airflow` extra of
# pyproject.toml when it declares one, else apache-airflow 3.3 or later 3.x.
# Nothing is installed when the virtualenv already holds Airflow 3 and
# constraints.txt has not changed since.
#
# Usage: scripts/install-airflow.sh [VENV]   (default: $VENV or .venv)
set -euo pipefail

cd "$(dirname "$0")/.."

venv=${1:-${VENV:-.venv}}
python=$venv/bin/python
stamp=$venv/.airflow-installed

if [[ ! -x "$python" ]]; then
    echo "install-airflow: $python not found; create the virtualenv first (make .venv/.installed)" >&2
    exit 1
fi

if [[ -n "${AIRFLOW_REQUIREMENT:-}" ]]; then
    requirement=("$AIRFLOW_REQUIREMENT")
elif grep -Eq '^airflow *= *\[' pyproject.toml; then
    requirement=(-e ".[airflow]")
else
    requirement=("apache-airflow>=3.3,<4")
fi

installed() {
    "$python" - <<'PY' 2>/dev/null
import importlib.metadata as metadata
import sys

version = metadata.version("apache-airflow")
sys.exit(0 if version.split(".")[0] == "3" else 1)
PY
}

if [[ -f "$stamp" && "$stamp" -nt constraints.txt ]] && installed; then
    exit 0
fi

started=$(date +%s)
"$python" -m pip install --quiet --disable-pip-version-check \
    -c constraints.txt "${requirement[@]}"
if ! installed; then
    echo "install-airflow: pip finished but Airflow 3 is not installed in $venv" >&2
    exit 1
fi
touch "$stamp"
version=$("$python" -c 'import importlib.metadata as m; print(m.version("apache-airflow"))')
echo "install-airflow: Apache Airflow $version installed in $(( $(date +%s) - started )) s"
