#!/usr/bin/env bash
# Scan infra/ with checkov, which parses Bicep itself (no Bicep CLI needed).
# checkov pins many packages that clash with the app's, so it lives in its own venv.
# Fails on any failed check and on any file checkov could not parse (it would go unchecked).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv-checkov"
version="3.3.30"

if [[ ! -x "$venv/bin/checkov" ]] || [[ "$("$venv/bin/checkov" --version 2>/dev/null)" != "$version" ]]; then
    echo "check_infra: installing checkov $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$version"
fi

report="$(mktemp -d)"
trap 'rm -rf "$report"' EXIT
cd "$root"
status=0
"$venv/bin/checkov" --config-file infra/.checkov.yaml --output cli --output json \
    --output-file-path "console,$report/results.json" "$@" || status=$?

"$venv/bin/python" - "$report/results.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
summary = report["summary"]
print("check_infra: {passed} passed, {failed} failed, {skipped} skipped, {parsing_errors} parsing errors".format(**summary))
sys.exit(1 if summary["failed"] or summary["parsing_errors"] else 0)
PY
exit "$status"
