#!/usr/bin/env bash
# Scan infra/ with checkov, which parses Bicep itself (no Bicep CLI needed).
# checkov pins many packages that clash with the app's, so it lives in its own venv.
# Fails on any failed check and on any file checkov could not parse (it would go unchecked).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv-checkov"
version="3.3.30"
# checkov 3.3.30 pins pycep-parser 0.5.1, which cannot parse Bicep's `extension` statement nor
# `deployer()` (infra/modules/identity.bicep, the Microsoft Graph extension): it would report that
# file as a parsing error. 0.7.1 parses them and gives the same results on the other templates, so
# it replaces the pin; pip then reports the conflict with checkov's pin, which is expected.
pycep="0.7.1"

installed() { "$venv/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true; }

if [[ ! -x "$venv/bin/checkov" ]] || [[ "$(installed checkov)" != "$version" ]] || [[ "$(installed pycep-parser)" != "$pycep" ]]; then
    echo "check_infra: installing checkov $version (with pycep-parser $pycep) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$version"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "pycep-parser==$pycep"
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
