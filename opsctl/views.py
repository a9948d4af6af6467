"""How the API's documents read in a terminal: pure functions from JSON to text.

The CLI shows what the API answers and names no state, stage or kind of its own: the API
owns those vocabularies (and validates what a user passes), so a new one needs no new CLI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from opsctl.style import badge
from opsctl.tables import fields, split_text, table

HISTORY_TAIL = 10
AML_EVENT = "Microsoft.MachineLearningServices."  # the app's own events: their short names read better
# A correlation id or event id (a GUID, with or without dashes): a cause, not a name.
_ID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_BY = re.compile(r"\(by ([^()]+)\)$")


def is_id(actor: str) -> bool:
    return bool(_ID.match(actor or ""))


def actor_name(actor: str, names: Mapping[str, str]) -> str:
    """Who moved a record: its name, the name found for an id, or the id's first 8 characters."""
    if not is_id(actor):
        return actor or "-"
    return names.get(actor) or f"id {actor[:8]}"


def name_from_audit(entries: Sequence[Mapping[str, Any]]) -> str | None:
    """Who a correlation id stands for, read from its audit entries: the admin who made the
    request (`ops.*`, reason ending `(by NAME)`), else the event that intake took in."""
    for entry in entries:
        found = _BY.search(str(entry.get("reason", "")))
        if str(entry.get("action", "")).startswith("ops.") and found:
            return found.group(1)
    for entry in entries:
        if entry.get("action") == "intake":
            # The subject's last part names what the event is about: `credit-risk:2`, `test-credit-risk-v2`.
            subject = str(entry.get("subject") or "").rstrip("/").rsplit("/", 1)[-1]
            return f"event {subject or str(entry.get('correlation_id', ''))[:8]}"
    return None


def current_percent(rollout: Mapping[str, Any]) -> str:
    """`50% (step 2/3)`, `mirror`, or `-` before the first step."""
    step, steps = rollout.get("step", -1), (rollout.get("plan") or {}).get("steps") or []
    if rollout.get("phase") == "mirror":
        return "mirror"
    return f"{steps[step]}% (step {step + 1}/{len(steps)})" if 0 <= step < len(steps) else "-"


def traffic_now(rollout: Mapping[str, Any]) -> str:
    """The endpoint's split now: the live traffic the API read from the platform, else the
    split the rollout is setting; `?` when neither is known (an ended rollout's record alone
    cannot tell: a rollback restored the split from before, a success left its last step)."""
    if rollout.get("live"):
        return split_text(rollout["live"]["traffic"])
    if rollout.get("target"):
        return split_text(rollout["target"]["traffic"]) + " (target)"
    return "?"


def mirror_now(rollout: Mapping[str, Any]) -> str:
    if rollout.get("live"):
        return split_text(rollout["live"].get("mirror_traffic"))
    return split_text((rollout.get("target") or {}).get("mirror"))


def health(document: Mapping[str, Any], width: int | None = None) -> str:
    checks = [["platform", badge("yes"), document.get("platform", "")]]
    checks += [[name, badge("yes" if (document.get(name) or {}).get("ok") else "NO"),
                (document.get(name) or {}).get("detail")]
               for name in ("policy", "storage")]
    return table(["check", "ok", "detail"], checks, width)


def ending(rollout: Mapping[str, Any]) -> Mapping[str, Any]:
    """The rollout's last entry that says where it stands: not the later deletion of the deployments it
    replaced (`retired`), which is housekeeping of the previous version, not this one's news."""
    return next((e for e in reversed(rollout.get("history") or []) if e.get("action") != "retired"), {})


def analysis_text(rollout: Mapping[str, Any]) -> str:
    """The last analysis, or why there is none (a first deployment or a full promotion skips them)."""
    analyses = [e for e in rollout.get("history") or [] if str(e.get("action", "")).startswith("analysis:")]
    if analyses:
        return f"{analyses[-1]['action'].split(':', 1)[1]} - {analyses[-1]['reason']}"
    if rollout.get("skip_analysis"):
        if not any((((rollout.get("baseline") or {}).get("traffic")) or {}).values()):
            return "none: a first deployment on an empty endpoint has nothing to compare with"
        return "none: promoted without analysis"
    return "none yet"


def rollouts(items: Sequence[Mapping[str, Any]], width: int | None = None) -> str:
    if not items:
        return "no rollouts"
    return table(
        ["endpoint", "model", "version", "state", "step", "traffic", "last action", "started"],
        [[f"{r['workspace']}/{r['endpoint']}", r["model"], r["version"], badge(r["state"]), current_percent(r),
          traffic_now(r), ending(r).get("action", "-"), _minute(r.get("started"))]
         for r in items],
        width, wrap={5},
    )


def rollout(r: Mapping[str, Any], names: Mapping[str, str], width: int | None = None) -> str:
    history = r.get("history") or []
    plan = r.get("plan") or {}
    head = fields([
        ("rollout", f"{r['id']} ({r['model']} v{r['version']}, rule {r['rule']})"),
        ("state", f"{badge(r['state'])}, phase {r['phase']}, step {current_percent(r)}"),
        ("steps", f"{plan.get('steps')}  manual gates {plan.get('manual_gates') or '-'}"),
        ("traffic", traffic_now(r)),
        ("mirror", mirror_now(r)),
        ("analysis", analysis_text(r)),
    ], width)
    rows = [[str(e.get("time", ""))[11:19], e.get("action", ""), actor_name(e.get("actor", ""), names),
             split_text(e.get("traffic")), e.get("reason", "")] for e in history[-HISTORY_TAIL:]]
    return head + "\n\n" + table(["time", "action", "actor", "traffic", "reason"], rows, width, wrap={2, 3, 4})


def rollout_history(items: Sequence[Mapping[str, Any]], width: int | None = None) -> str:
    if not items:
        return "no finished rollouts"
    rows = []
    for r in items:
        rows.append([f"{r['model']} v{r['version']}", badge(r["state"]), _minute(r.get("started")),
                     _minute(r.get("finished")), r.get("rollback_reason") or ending(r).get("reason", "")])
    return table(["version", "state", "started", "finished", "how it ended"], rows, width)


def champion_history(document: Mapping[str, Any], width: int | None = None) -> str:
    """A rule's champions, oldest first: the one serving now has no end."""
    terms = document.get("terms") or []
    if not terms:
        return f"no champion has served for rule {document.get('rule', '?')} yet"
    rows = [[f"{t['model']} v{t['version']}", t.get("endpoint") or "-", _minute(t.get("since")),
             _minute(t.get("until")) if t.get("until") else "serving", t.get("began") or "-", t.get("ended") or "-"]
            for t in terms]
    return table(["version", "endpoint", "since", "until", "how it began", "how it ended"], rows, width, wrap={4, 5})


def lifecycles(items: Sequence[Mapping[str, Any]], width: int | None = None) -> str:
    if not items:
        return "no lifecycles"
    rows = []
    for r in items:
        last = (r.get("history") or [{}])[-1]
        rows.append([r["model"], r["version"], badge(r["stage"]), r["rule"], _minute(last.get("time")),
                     last.get("reason", "")])
    return table(["model", "version", "stage", "rule", "since", "reason"], rows, width)


def lifecycle(r: Mapping[str, Any], names: Mapping[str, str], width: int | None = None) -> str:
    head = fields([
        ("model", f"{r['model']} v{r['version']} in {r['workspace']} (rule {r['rule']})"),
        ("stage", badge(r["stage"])),
        ("test job", " ".join(filter(None, (r.get("test_job") or "-", r.get("test_job_url"))))),
        ("metrics", _pairs(r.get("metrics"), "=")),
        ("promoted", _pairs(r.get("promoted_to") or r.get("promoted"))),
        ("review", _review(r.get("review"))),
    ], width)
    parts = [head]
    if r.get("test_job_log"):  # why a failed test job failed, as Azure ML kept its log
        log = "\n".join("  " + line for line in r["test_job_log"].splitlines())
        parts.append(f"the end of the test job's log:\n{log}")
    gates = r.get("gates")
    if isinstance(gates, dict) and gates.get("header"):
        parts.append(table(gates["header"], gates.get("rows") or [], width))
    rows = [[_minute(e.get("time")), e.get("stage", ""), actor_name(e.get("cause") or e.get("actor", ""), names),
             e.get("reason", "")] for e in r.get("history") or []]
    parts.append(table(["time", "stage", "by", "reason"], rows, width, wrap={2, 3}))
    return "\n\n".join(parts)


def _review(decision: object) -> str:
    """`approved by bob@contoso.test (api) at 2026-12-01T09:30: checked`, or `-`."""
    if not isinstance(decision, Mapping):
        return "-"
    verdict = "approved" if decision.get("approved") else "rejected"
    said = f": {decision['reason']}" if decision.get("reason") else ""
    return f"{verdict} by {decision.get('by')} ({decision.get('via')}) at {str(decision.get('at'))[:16]}{said}"


def audit(items: Sequence[Mapping[str, Any]], width: int | None = None) -> str:
    if not items:
        return "no audit entries"
    """Who acted is the verified person's name (`by`), `-` for what the app did by itself."""
    return table(["time", "action", "outcome", "by", "subject", "reason"],
                 [[str(e["time"])[:19], e["action"], e["outcome"], e.get("by") or "-", e["subject"], e["reason"]]
                  for e in items], width, wrap={4, 5})


def set_aside(items: Sequence[Mapping[str, Any]], width: int | None = None) -> str:
    """Keys whole (they are what `replay` takes); the event and the reason wrap."""
    if not items:
        return "nothing set aside"
    rows = []
    for item in items:
        event = " ".join(filter(None, [str(item.get("event_type") or "").removeprefix(AML_EVENT), item.get("subject")]))
        rows.append([_minute(item["time"]), item["kind"], item["key"], event or "-",
                     item["reason"]])
    return table(["time", "kind", "key", "event", "reason"], rows, width, wrap={3, 4})


def score_job(job: Mapping[str, Any], width: int | None = None) -> str:
    ranges = job.get("ranges") or {}
    pairs = [
        ("job", job.get("job_id", "")),
        ("state", job.get("state", "")),
        ("input", job.get("input", "")),
        ("output", f"{job.get('output', '')} ({job.get('format', '')})"),
        ("ranges", f"{ranges.get('done', 0)}/{ranges.get('total', 0)} done"),
        ("rows", f"{job.get('rows_done', 0)} at {job.get('rows_per_second') or '-'} rows/s"),
    ]
    if job.get("bad_rows"):
        pairs.append(("bad rows", job["bad_rows"]))
    if job.get("error"):
        pairs.append(("error", job["error"]))
    if job.get("handoff"):
        pairs.append(("hand-off", job["handoff"]))
    return fields(pairs, width)


def _pairs(mapping: Any, sep: str = ": ") -> str:
    if not isinstance(mapping, dict) or not mapping:
        return "-"
    return ", ".join(f"{name}{sep}{value}" for name, value in sorted(mapping.items()))


def _minute(timestamp: Any) -> str:
    """`2026-11-30 10:05` from an ISO 8601 time; `-` for none."""
    return str(timestamp)[:16].replace("T", " ") if timestamp else "-"


def signin(document: Mapping[str, Any], verdict: str, width: int | None = None) -> str:
    """The app's `ops/signin` answer, and what opsctl makes of it."""
    return fields([
        ("authority", document.get("authority")), ("tenant", document.get("tenant_id")),
        ("app", f"{document.get('client_id')} (the audience of its tokens)"), ("scope", document.get("scope")),
        ("opsctl as", document.get("opsctl_client_id") or "- (the app's own registration, as a public client)"),
        ("opsctl", verdict),
    ], width)


WHO_CLAIMS = ("name", "preferred_username", "upn", "oid", "roles", "tid", "aud", "exp")


def whoami(claims: Mapping[str, Any], how: str, width: int | None = None) -> str:
    """Who the token says is signed in. Read from its claims for display only: the app verifies the token."""
    expires = claims.get("exp")
    return fields([
        ("name", claims.get("name") or "-"),
        ("username", claims.get("preferred_username") or "-"),
        ("upn", claims.get("upn") or "-"),
        ("oid", claims.get("oid") or "-"),
        ("roles", ", ".join(claims.get("roles") or []) or "none (the app refuses every person's route)"),
        ("tenant", claims.get("tid") or "-"),
        ("app", claims.get("aud") or "-"),
        ("expires", datetime.fromtimestamp(expires).astimezone().isoformat(timespec="seconds")
         if isinstance(expires, int | float) else "-"),
        ("via", how),
        ("note", "read from the token's claims for display only; the app verifies each token itself"),
    ], width)
