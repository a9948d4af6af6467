#!/usr/bin/env bash
# Scan infra/ with checkov (it parses Bicep itself; no Bicep CLI needed).
# checkov pins many packages that clash with the app's, so it lives in its own venv.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv-checkov"
version="3.3.30"

if [[ ! -x "$venv/bin/checkov" ]] || ! "$venv/bin/checkov" --version 2>/dev/null | grep -qx "$version"; then
    echo "check_infra: installing checkov $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$version"
fi

cd "$root"
exec "$venv/bin/checkov" --config-file infra/.checkov.yaml "$@"
