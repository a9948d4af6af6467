"""Send Azure ML events to a running Functions host (`func start` or the local host).

    python -m tools.send_events samples/events       # events of the workspaces ./dev host runs
    python -m tools.send_events --generate model-registered --model credit-risk --version 3
    python -m tools.send_events samples/subscription-validation.json   # the validation handshake

Events are posted to `/runtime/webhooks/eventgrid?functionName=aml_events` as Event Grid
does: a JSON array with `aeg-event-type: Notification` (CloudEvents as
`application/cloudevents+json`). The system key comes from `--key` or `$EVENTGRID_KEY`
or `.localdev/keys.json`, and the host's URL from `--url` or `.localdev/connection.json`,
both written by `./dev host` (`func start` does not check the key; the local host does).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from localaml.service import LocalAzureML


def generate(kind: str, workspace: str, model: str, version: str, coefficient: float) -> dict[str, Any]:
    """A fresh Event Grid schema event of one kind, with a new id."""
    data: dict[str, Any]
    if kind == "model-registered":
        event_type, subject = "ModelRegistered", f"models/{model}:{version}"
        data = {"ModelName": model, "ModelVersion": version, "ModelTags": {}, "ModelProperties": {}}
    elif kind == "drift":
        event_type, subject = "DatasetDriftDetected", f"datadrift/{model}-monitor/run/{uuid.uuid4().hex[:8]}"
        data = {"DataDriftId": uuid.uuid4().hex, "DataDriftName": f"{model}-monitor",
                "RunId": uuid.uuid4().hex, "DriftCoefficient": coefficient}
    else:
        raise SystemExit(f"unknown kind {kind!r}: model-registered or drift")
    return {
        "id": str(uuid.uuid4()), "topic": LocalAzureML.workspace_id(workspace), "subject": subject,
        "eventType": f"Microsoft.MachineLearningServices.{event_type}",
        "eventTime": datetime.now(UTC).isoformat(), "data": data, "dataVersion": "", "metadataVersion": "1",
    }


def load(paths: list[Path]) -> list[dict[str, Any]]:
    """Every event in the given files and folders (a file holds one event or an array)."""
    files = sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob("*.json")))
    events: list[dict[str, Any]] = []
    for file in files:
        loaded = json.loads(file.read_text())
        events.extend(loaded if isinstance(loaded, list) else [loaded])
    return events


def send(url: str, key: str | None, event: dict[str, Any], function: str = "aml_events") -> requests.Response:
    is_cloud_event = any(name.lower() == "specversion" for name in event)
    validation = event.get("eventType") == "Microsoft.EventGrid.SubscriptionValidationEvent"
    headers = {
        "aeg-event-type": "SubscriptionValidation" if validation else "Notification",
        "Content-Type": "application/cloudevents+json" if is_cloud_event else "application/json",
    }
    params = {"functionName": function, **({"code": key} if key else {})}
    body = event if is_cloud_event else [event]
    return requests.post(f"{url}/runtime/webhooks/eventgrid", params=params, json=body, headers=headers, timeout=30)


LOCAL = Path(".localdev")


def _local_host_key() -> str | None:
    """The local host's Event Grid system key, if `./dev host` made one here."""
    keys = LOCAL / "keys.json"
    return json.loads(keys.read_text()).get("eventgrid_extension") if keys.exists() else None


def _local_host_url() -> str:
    """The URL `./dev host` wrote, else the Functions host's default one."""
    connection = LOCAL / "connection.json"
    return str(json.loads(connection.read_text())["host"]) if connection.exists() else "http://127.0.0.1:7071"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path, help="event files or folders of them")
    parser.add_argument("--url", default=_local_host_url())
    parser.add_argument("--key", default=os.environ.get("EVENTGRID_KEY") or _local_host_key())
    parser.add_argument("--generate", choices=["model-registered", "drift"])
    parser.add_argument("--workspace", default="dev")
    parser.add_argument("--model", default="credit-risk")
    parser.add_argument("--version", default="1")
    parser.add_argument("--coefficient", type=float, default=0.8)
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.paths if not path.exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")
    events = load(args.paths)
    if args.generate:
        events.append(generate(args.generate, args.workspace, args.model, args.version, args.coefficient))
    if not events:
        parser.error("no events: give files or folders, or --generate")
    failed = 0
    for event in events:
        response = send(args.url, args.key, event)
        kind = event.get("eventType") or event.get("type")
        print(f"{response.status_code} {kind} {event.get('subject', '')} {response.text[:200]}")
        failed += response.status_code >= 300
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
