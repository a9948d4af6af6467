"""Vendor MSAL.js into the control room: `python -m tools.vendor_msal`.

Copies `node_modules/@azure/msal-browser/lib/msal-browser.min.js` (the UMD build, which defines
`msal`) and the package's LICENSE into `shared/ops/controlroom/`, byte for byte, after checking that
node_modules holds the version package-lock.json pins (run `npm ci` first). The function app deploys
without node_modules, so the page serves this copy; tests/unit/test_controlroom.py fails when the
copy and the pinned package differ (an `npm update` without running this again).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "node_modules" / "@azure" / "msal-browser"
FOLDER = ROOT / "shared" / "ops" / "controlroom"
FILES = {PACKAGE / "lib" / "msal-browser.min.js": FOLDER / "msal-browser.min.js",
         PACKAGE / "LICENSE": FOLDER / "msal-browser.LICENSE"}


def pinned_version(root: Path = ROOT) -> str:
    """The version of @azure/msal-browser that package-lock.json pins."""
    lock = json.loads((root / "package-lock.json").read_text())
    return str(lock["packages"]["node_modules/@azure/msal-browser"]["version"])


def installed_version(root: Path = ROOT) -> str | None:
    """The version node_modules holds, None when it holds none."""
    manifest = root / "node_modules" / "@azure" / "msal-browser" / "package.json"
    return str(json.loads(manifest.read_text())["version"]) if manifest.is_file() else None


def main() -> int:
    pinned, installed = pinned_version(), installed_version()
    if installed != pinned:
        print(f"node_modules holds @azure/msal-browser {installed or 'nothing'}, package-lock.json pins {pinned}: "
              "run npm ci first", file=sys.stderr)
        return 1
    for source, target in FILES.items():
        shutil.copyfile(source, target)
        print(f"{target.relative_to(ROOT)} <- {source.relative_to(ROOT)} (@azure/msal-browser {pinned})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
