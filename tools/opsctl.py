"""Command-line client of the admin API.

    python -m tools.opsctl --url http://127.0.0.1:7071 --key KEY status
    python -m tools.opsctl rollouts
    python -m tools.opsctl rollout prod credit-risk
    python -m tools.opsctl pause prod credit-risk --reason "error budget spent"
    python -m tools.opsctl resume|approve|promote|abort|undo prod credit-risk
    python -m tools.opsctl traffic prod credit-risk credit-risk-v1=90 credit-risk-v2=10 --mirror credit-risk-v3=10
    python -m tools.opsctl lifecycles [--stage live] [--model credit-risk]
    python -m tools.opsctl audit [--since 2024-05-01] [--limit 50]
    python -m tools.opsctl replay deadletter KEY
    python -m tools.opsctl validate-policy policy/policy.yaml

The function key comes from `--key` or `$MLOPS_FUNCTION_KEY`, the URL from `--url` or
`$MLOPS_API_URL`. An error prints the API's message (and the field at fault) on stderr
and exits with 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests

ACTIONS = ("pause", "resume", "approve", "promote", "abort", "undo")
HISTORY_TAIL = 8


class ApiFailure(Exception):
    """The API answered with an error, or could not be reached."""


class Client:
    def __init__(self, url: str, key: str | None, timeout: float = 60) -> None:
        self.base = url.rstrip("/") + "/api/ops/"
        self.headers = {"x-functions-key": key} if key else {}
        self.timeout = timeout

    def call(self, method: str, path: str, *, body: Any = None, text: str | None = None,
             params: dict[str, Any] | None = None, ok: Sequence[int] = ()) -> Any:
        """The JSON answer; ApiFailure with the API's own message when it refuses."""
        try:
            response = requests.request(
                method, self.base + path, headers=self.headers, timeout=self.timeout,
                params={k: v for k, v in (params or {}).items() if v is not None},
                json=body if text is None else None, data=text.encode() if text is not None else None,
            )
        except requests.RequestException as error:
            raise ApiFailure(f"cannot reach {self.base}: {error}") from None
        if response.status_code == 401:
            raise ApiFailure("401: the function key is missing or wrong (--key or $MLOPS_FUNCTION_KEY)")
        try:
            document = response.json()
        except ValueError:
            document = None
        if response.ok or response.status_code in ok:
            return document
        if isinstance(document, dict) and "error" in document:
            field = f" (field: {document['field']})" if document.get("field") else ""
            raise ApiFailure(f"{response.status_code}: {document['error']}{field}")
        raise ApiFailure(f"{response.status_code}: {response.text[:300] or response.reason}")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain-text columns, aligned, with a rule under the header."""
    cells = [[str(value) for value in row] for row in rows]
    widths = [max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(value.ljust(width) for value, width in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *(line(row) for row in cells)])


def split_text(split: dict[str, int] | None) -> str:
    return ", ".join(f"{name}={percent}%" for name, percent in sorted((split or {}).items())) or "-"


def current_percent(rollout: dict[str, Any]) -> str:
    step, steps = rollout.get("step", -1), rollout.get("plan", {}).get("steps", [])
    if rollout.get("phase") == "mirror":
        return "mirror"
    return f"{steps[step]}% (step {step + 1}/{len(steps)})" if 0 <= step < len(steps) else "-"


def traffic_now(rollout: dict[str, Any]) -> dict[str, int]:
    """The split the rollout set last: its target, else the latest history entry with one."""
    if rollout.get("live"):
        return rollout["live"]["traffic"]
    if rollout.get("target"):
        return rollout["target"]["traffic"]
    entries = [entry for entry in rollout.get("history", []) if entry.get("traffic")]
    return entries[-1]["traffic"] if entries else rollout.get("baseline", {}).get("traffic", {})


# Commands -------------------------------------------------------------------------------


def status(client: Client, args: argparse.Namespace) -> str:
    health = client.call("GET", "health", ok=(503,))
    checks = table(["check", "ok", "detail"], [
        ["platform", "yes", health["platform"]],
        ["policy", _yes(health["policy"]["ok"]), health["policy"]["detail"]],
        ["storage", _yes(health["storage"]["ok"]), health["storage"]["detail"]],
    ])
    return checks + "\n\n" + rollouts(client, args)


def rollouts(client: Client, args: argparse.Namespace) -> str:
    items = client.call("GET", "rollouts", params={"state": getattr(args, "state", None)})["items"]
    if not items:
        return "no rollouts"
    return table(
        ["endpoint", "model", "version", "state", "step", "traffic", "last", "started"],
        [[f"{r['workspace']}/{r['endpoint']}", r["model"], r["version"], r["state"], current_percent(r),
          split_text(traffic_now(r)), (r["history"][-1]["action"] if r["history"] else "-"), r["started"][:19]]
         for r in items],
    )


def rollout(client: Client, args: argparse.Namespace) -> str:
    r = client.call("GET", f"rollouts/{args.workspace}/{args.endpoint}")
    analyses = [entry for entry in r["history"] if entry["action"].startswith("analysis:")]
    last = analyses[-1] if analyses else None
    live = r.get("live") or {}
    lines = [
        f"rollout    {r['id']} ({r['model']} v{r['version']}, rule {r['rule']})",
        f"state      {r['state']}  phase {r['phase']}  step {current_percent(r)}",
        f"steps      {r['plan'].get('steps')}  manual gates {r['plan'].get('manual_gates') or '-'}",
        f"traffic    {split_text(traffic_now(r))}",
        f"mirror     {split_text(live.get('mirror_traffic') if live else (r.get('target') or {}).get('mirror'))}",
        f"analysis   {last['action'].split(':', 1)[1] + ' - ' + last['reason'] if last else '-'}",
        "",
        table(["time", "action", "actor", "traffic", "reason"],
              [[e["time"][11:19], e["action"], e["actor"], split_text(e.get("traffic")), e["reason"][:80]]
               for e in r["history"][-HISTORY_TAIL:]]),
    ]
    return "\n".join(lines)


def act(client: Client, args: argparse.Namespace) -> str:
    r = client.call("POST", f"rollouts/{args.workspace}/{args.endpoint}/{args.command}",
                    body={"reason": args.reason} if args.reason else {})
    return f"{args.command}: rollout {r['id']} is {r['state']} at {current_percent(r)}"


def traffic(client: Client, args: argparse.Namespace) -> str:
    answer = client.call("POST", f"endpoints/{args.workspace}/{args.endpoint}/traffic", body={
        "traffic": _pairs(args.split, "traffic"), "mirror_traffic": _pairs(args.mirror or [], "--mirror"),
    })
    paused = f"; rollout {answer['rollout_state']}" if answer.get("rollout_state") else ""
    return (f"traffic on {args.workspace}/{args.endpoint}: {split_text(answer['traffic'])} "
            f"(mirror {split_text(answer['mirror_traffic'])}){paused}")


def lifecycles(client: Client, args: argparse.Namespace) -> str:
    items = client.call("GET", "lifecycles", params={"stage": args.stage, "model": args.model})["items"]
    if not items:
        return "no lifecycles"
    return table(["model", "version", "stage", "rule", "since", "reason"], [
        [r["model"], r["version"], r["stage"], r["rule"], (r["history"] or [{}])[-1].get("time", "")[:19],
         (r["history"] or [{}])[-1].get("reason", "")[:70]] for r in items
    ])


def audit(client: Client, args: argparse.Namespace) -> str:
    items = client.call("GET", "audit", params={
        "since": args.since, "limit": args.limit, "correlation_id": args.correlation_id, "subject": args.subject,
        "action": args.action,
    })["items"]
    if not items:
        return "no audit entries"
    return table(["time", "action", "outcome", "subject", "reason"],
                 [[e["time"][:19], e["action"], e["outcome"], e["subject"][:40], e["reason"][:80]] for e in items])


def replay(client: Client, args: argparse.Namespace) -> str:
    answer = client.call("POST", "events/replay", body={"kind": args.kind, "key": args.record})
    return f"replayed {answer['kind']} {answer['key']}: {answer['outcome']}"


def validate_policy(client: Client, args: argparse.Namespace) -> str:
    try:
        text = Path(args.file).read_text()
    except OSError as error:
        raise ApiFailure(f"cannot read {args.file}: {error.strerror}") from None
    answer = client.call("POST", "policy/validate", text=text)
    return f"{args.file} is valid: rules {', '.join(answer['rules'])}"


def _pairs(items: Sequence[str], what: str) -> dict[str, int]:
    split = {}
    for item in items:
        name, sep, percent = item.partition("=")
        if not sep or not percent.strip().isdigit():
            raise ApiFailure(f"{what}: expected deployment=percent, got {item!r}")
        split[name.strip()] = int(percent)
    return split


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


# Arguments ------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="opsctl", description="The MLOps admin API from the command line.")
    main.add_argument("--url", default=os.environ.get("MLOPS_API_URL", "http://127.0.0.1:7071"))
    main.add_argument("--key", default=os.environ.get("MLOPS_FUNCTION_KEY"), help="function key")
    commands = main.add_subparsers(dest="command", required=True)

    def add(name: str, run: Callable[[Client, argparse.Namespace], str], help: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help)
        command.set_defaults(run=run)
        return command

    add("status", status, "health checks and rollouts")
    add("rollouts", rollouts, "every rollout").add_argument("--state")
    for name, run, help in (("rollout", rollout, "one rollout's progress and history"),
                            *((action, act, f"{action} the endpoint's rollout") for action in ACTIONS)):
        command = add(name, run, help)
        command.add_argument("workspace")
        command.add_argument("endpoint")
        if run is act:
            command.add_argument("--reason", default="")
    command = add("traffic", traffic, "set an endpoint's traffic (pauses its rollout)")
    command.add_argument("workspace")
    command.add_argument("endpoint")
    command.add_argument("split", nargs="+", metavar="deployment=percent")
    command.add_argument("--mirror", nargs="+", metavar="deployment=percent")
    command = add("lifecycles", lifecycles, "model lifecycles")
    command.add_argument("--stage")
    command.add_argument("--model")
    command = add("audit", audit, "the audit trail")
    command.add_argument("--since", help="ISO date or date-time")
    command.add_argument("--limit", type=int, default=50)
    command.add_argument("--correlation-id")
    command.add_argument("--subject")
    command.add_argument("--action")
    command = add("replay", replay, "replay a rejected or ignored event, or a dead letter")
    command.add_argument("kind", choices=("rejected", "ignored", "deadletter"))
    # Not `key`: that is the function key (`--key`), which a positional of the same name would replace.
    command.add_argument("record", metavar="KEY", help="the stored event's or work item's key")
    add("validate-policy", validate_policy, "check a policy file").add_argument("file")
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        print(args.run(Client(args.url, args.key), args))
    except ApiFailure as failure:
        print(f"opsctl {args.command}: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
