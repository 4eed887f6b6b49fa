#!/usr/bin/env bash
# Install the object-store emulators the test suite starts (idempotent).
#
# Azurite comes from npm at the version pinned in package.json and
# package-lock.json; moto and the GCS emulators are Python packages in the
# project's test extra. Nothing is installed when node_modules already
# matches the lock file.
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null 2>&1; then
    echo "install-test-servers: npm not found; install Node.js 20 (apt-get install nodejs npm)" >&2
    exit 1
fi

stamp=node_modules/.datamove-installed
if [[ -x node_modules/.bin/azurite-blob && -f "$stamp" && "$stamp" -nt package-lock.json ]]; then
    exit 0
fi

npm ci --no-audit --no-fund --loglevel=error
touch "$stamp"
