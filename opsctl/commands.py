"""The commands: each calls its route(s) and returns the API's document with its text.

A command passes what the user gave as it is: the API validates it and names the field at
fault, so the CLI holds no list of states, stages or kinds to fall behind the app's.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsctl import auth, views
from opsctl.client import ApiFailure, Client, segment

MAX_NAMED_ACTORS = 10  # ids looked up in the audit trail per view


@dataclass(frozen=True)
class Shown:
    """A command's outcome: the API's document (for `--json`) and its text for a person."""

    document: Any
    text: str


Command = Callable[[Client, argparse.Namespace], Shown]


def health(client: Client, args: argparse.Namespace) -> Shown:
    document = client.call("GET", "ops/health", ok=(503,))
    return Shown(document, views.health(document))


def status(client: Client, args: argparse.Namespace) -> Shown:
    checks = health(client, args)
    listed = rollouts(client, args)
    return Shown({"health": checks.document, "rollouts": listed.document}, checks.text + "\n\n" + listed.text)


def rollouts(client: Client, args: argparse.Namespace) -> Shown:
    """The list, and for the text each endpoint's rollout again: only that answer has the
    endpoint's live traffic, which is what the traffic column shows."""
    document = listing(client, "ops/rollouts", {"state": args.state, "endpoint": args.endpoint}, args)
    if args.json:
        return Shown(document, "")
    items = [_with_live(client, r) for r in document["items"]]
    return Shown(document, views.rollouts(items) + _more(document))


def listing(client: Client, path: str, params: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """A listing route's page (`--limit`, from `--next TOKEN`), or with `--all` every page after it, joined;
    `next` is the token of the page after the last one shown (absent: no more)."""
    params = {**params, "limit": getattr(args, "limit", None), "next": getattr(args, "next", None)}
    document: dict[str, Any] = client.call("GET", path, params=params)
    while getattr(args, "all", False) and document.get("next"):
        following = client.call("GET", path, params={**params, "next": document["next"]})
        document = {**following, "items": [*document["items"], *following["items"]]}
    return document


def _more(document: dict[str, Any]) -> str:
    """The hint to the next page, when there is one."""
    return f"\nmore: --next {document['next']} (or --all)" if document.get("next") else ""


def _with_live(client: Client, listed: dict[str, Any]) -> dict[str, Any]:
    try:
        detail = client.call("GET", f"ops/rollouts/{segment(listed['workspace'])}/{segment(listed['endpoint'])}")
    except ApiFailure:
        return listed  # ended and replaced meanwhile, or unreachable: the listed record still answers
    return {**listed, "live": detail.get("live"), "target": detail.get("target")}


def rollout(client: Client, args: argparse.Namespace) -> Shown:
    document = client.call("GET", f"ops/rollouts/{segment(args.workspace)}/{segment(args.endpoint)}")
    if args.json:
        return Shown(document, "")
    actors = [entry.get("actor", "") for entry in document.get("history") or []]
    return Shown(document, views.rollout(document, _names(client, actors, document.get("started"))))


def history(client: Client, args: argparse.Namespace) -> Shown:
    document = listing(client, f"ops/rollouts/{segment(args.workspace)}/{segment(args.endpoint)}/history", {}, args)
    return Shown(document, views.rollout_history(document["items"]) + _more(document))


def start_rollout(client: Client, args: argparse.Namespace) -> Shown:
    body: dict[str, Any] = {"model": {"location": args.location, "name": args.name, "version": args.version},
                            "rule": args.rule}
    if args.plan:
        body["plan"] = _json_file(args.plan, "--plan")
    r = client.call("POST", "ops/rollouts", body=body)
    return Shown(r, f"rollout {r['id']} started on {r['workspace']}/{r['endpoint']}: {r['state']} "
                    f"(steps {(r.get('plan') or {}).get('steps')})")


def rollout_action(client: Client, args: argparse.Namespace) -> Shown:
    r = client.call("POST", f"ops/rollouts/{segment(args.workspace)}/{segment(args.endpoint)}/{args.command}",
                    body={"reason": args.reason} if args.reason else {})
    return Shown(r, f"{args.command}: rollout {r['id']} is {r['state']} at {views.current_percent(r)}")


def traffic(client: Client, args: argparse.Namespace) -> Shown:
    body = {"traffic": _split(args.split, "traffic"), "mirror_traffic": _split(args.mirror or [], "--mirror")}
    answer = client.call("POST", f"ops/endpoints/{segment(args.workspace)}/{segment(args.endpoint)}/traffic",
                         body=body)
    paused = f"; rollout {answer['rollout_state']}" if answer.get("rollout_state") else ""
    return Shown(answer, f"traffic on {args.workspace}/{args.endpoint}: {views.split_text(answer['traffic'])} "
                         f"(mirror {views.split_text(answer['mirror_traffic'])}){paused}")


def promote_model(client: Client, args: argparse.Namespace) -> Shown:
    path = f"ops/models/{segment(args.location)}/{segment(args.name)}/{segment(args.version)}/promote"
    answer = client.call("POST", path, body={"targets": args.target} if args.target else {})
    copies = "; ".join(f"{target}: {uri}" for target, uri in answer["promoted"].items())
    return Shown(answer, f"{answer['model']} v{answer['version']} promoted from {answer['source']}: {copies}")


def retrain(client: Client, args: argparse.Namespace) -> Shown:
    request_id = args.request_id or f"opsctl-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    answer = client.call("POST", "ops/retrain", body={"rule": args.rule, "request_id": request_id})
    studio = f"\n  {answer['studio_url']}" if answer.get("studio_url") else ""
    return Shown(answer, f"retraining {answer['rule']}: job {answer['job']} ({answer['status']}) in "
                         f"{answer['workspace']}; --request-id {request_id} finds the same job again{studio}")


def lifecycles(client: Client, args: argparse.Namespace) -> Shown:
    document = listing(client, "ops/lifecycles", {"stage": args.stage, "model": args.model,
                                                  "rule": getattr(args, "rule", None)}, args)
    return Shown(document, views.lifecycles(document["items"]) + _more(document))


def lifecycle(client: Client, args: argparse.Namespace) -> Shown:
    document = client.call("GET", f"ops/lifecycles/{segment(args.name)}/{segment(args.version)}")
    if args.json:
        return Shown(document, "")
    causes = [entry.get("cause") or entry.get("actor", "") for entry in document.get("history") or []]
    first = (document.get("history") or [{}])[0].get("time")
    return Shown(document, views.lifecycle(document, _names(client, causes, first)))


def champions(client: Client, args: argparse.Namespace) -> Shown:
    document = client.call("GET", f"ops/champions/{segment(args.rule)}/history")
    return Shown(document, views.champion_history(document))


def review(client: Client, args: argparse.Namespace) -> Shown:
    body = {"decision": args.decision, **({"reason": args.reason} if args.reason is not None else {})}
    answer = client.call("POST", f"ops/lifecycles/{segment(args.name)}/{segment(args.version)}/review", body=body)
    return Shown(answer, f"{args.decision}: {answer['model']} v{answer['version']} is {answer['stage']}")


def audit(client: Client, args: argparse.Namespace) -> Shown:
    document = listing(client, "ops/audit", {
        "since": args.since, "correlation_id": args.correlation_id, "subject": args.subject, "action": args.action,
    }, args)
    return Shown(document, views.audit(document["items"]) + _more(document))


def set_aside(client: Client, args: argparse.Namespace) -> Shown:
    document = listing(client, "ops/events/setaside", {"kind": args.kind}, args)
    return Shown(document, views.set_aside(document["items"]) + _more(document))


def replay(client: Client, args: argparse.Namespace) -> Shown:
    answer = client.call("POST", "ops/events/replay", body={"kind": args.kind, "key": args.record})
    return Shown(answer, f"replayed {answer['kind']} {answer['key']}: {answer['outcome']}")


def validate_policy(client: Client, args: argparse.Namespace) -> Shown:
    try:
        text = Path(args.file).read_text()
    except OSError as error:
        raise ApiFailure(f"cannot read {args.file}: {error.strerror}") from None
    answer = client.call("POST", "ops/policy/validate", text=text)
    return Shown(answer, f"{args.file} is valid: rules {', '.join(answer['rules'])}")


def openapi(client: Client, args: argparse.Namespace) -> Shown:
    document = client.call("GET", "ops/openapi.json")
    return Shown(document, json.dumps(document, indent=2))


def score_submit(client: Client, args: argparse.Namespace) -> Shown:
    if args.request:
        body = _json_file(args.request, "--request")
    else:
        if bool(args.model) == bool(args.onnx):
            raise ApiFailure("score submit: give the model as --model LOCATION/NAME/VERSION or --onnx CONTAINER/PATH")
        body = {"input": args.input, "model": _model_ref(args.model) if args.model else {"blob": args.onnx}}
        output = {"container": args.output_container, "path": args.output_path, "format": args.format}
        if any(output.values()):
            body["output"] = {name: value for name, value in output.items() if value}
        if args.features:
            body["features"] = args.features
        if args.id_column:
            body["id_columns"] = args.id_column
    job = client.call("POST", "score", body=body)
    return Shown(job, views.score_job(job))


def score_status(client: Client, args: argparse.Namespace) -> Shown:
    job = client.call("GET", f"score/{segment(args.job)}")
    return Shown(job, views.score_job(job))


# Signing in -----------------------------------------------------------------------------


def signin_info(client: Client, args: argparse.Namespace) -> Shown:
    document = client.call("GET", "ops/signin")
    try:
        signin = auth.SignIn.checked(document, client.url)
        auth.check_transport(client.url)
        verdict = f"signs in at {signin.authority} as client {signin.public_client_id}"
    except ApiFailure as refused:
        verdict = str(refused)
    return Shown(document, views.signin(document, verdict))


HOW = {auth.DEVICE_CODE: "a device code", auth.BROWSER: "the browser", auth.AZURE_CLI: "the Azure CLI"}


def login(client: Client, args: argparse.Namespace) -> Shown:
    how = args.method or (auth.AZURE_CLI if args.azure_cli else auth.DEVICE_CODE)

    def starting(signin: auth.SignIn) -> None:
        if how == auth.BROWSER:
            print(f"opsctl login: opening a browser to sign in at {signin.authority} (waiting up to 5 minutes; "
                  "Ctrl-C stops)", file=sys.stderr, flush=True)

    saved, claims = _auth(client).login(lambda: client.call("GET", "ops/signin"), how, starting)
    who = claims.get("name") or claims.get("preferred_username") or claims.get("oid") or "?"
    username = claims.get("preferred_username") or claims.get("upn")
    kept = (f"the account in {saved.record_file} (0600); tokens in azure-identity's cache {auth.CACHE_NAME!r}"
            if saved.record_file else "nothing but where to sign in: each command asks the Azure CLI")
    text = views.fields([
        ("signed in", f"{who}{f' ({username})' if username and username != who else ''} to {client.url}"),
        ("with", f"{HOW[how]} at {saved.signin.authority}"),
        ("roles", ", ".join(claims.get("roles") or []) or "none yet (ask for an MLOps.* app role)"),
        ("saved", kept),
    ])
    return Shown({"app": client.url, "credential": how, **saved.signin.saved(), "username": username,
                  "roles": claims.get("roles") or [], "record": str(saved.record_file) if saved.record_file else None},
                 text)


def logout(client: Client, args: argparse.Namespace) -> Shown:
    forgot = _auth(client).logout()
    text = (f"signed out of {client.url}: opsctl forgot the saved sign-in" if forgot
            else f"not signed in to {client.url}: nothing to forget")
    return Shown({"app": client.url, "signed_out": forgot}, text)


def whoami(client: Client, args: argparse.Namespace) -> Shown:
    token, _, how = _auth(client).token(lambda: client.call("GET", "ops/signin"))
    claims = auth.claims(token.token)
    shown = {name: claims[name] for name in views.WHO_CLAIMS if name in claims}
    return Shown(shown, views.whoami(claims, "the Azure CLI" if how == auth.AZURE_CLI else "opsctl login"))


def token(client: Client, args: argparse.Namespace) -> Shown:
    """The one command that prints a token: for curl and test.http (`Authorization: Bearer <token>`)."""
    found, _, _ = _auth(client).token(lambda: client.call("GET", "ops/signin"))
    return Shown({"access_token": found.token, "expires_on": found.expires_on, "token_type": "Bearer"}, found.token)


def _auth(client: Client) -> auth.Auth:
    if not isinstance(client.auth, auth.Auth):
        raise ApiFailure("no sign-in is set up for this client")
    return client.auth


# Helpers --------------------------------------------------------------------------------


def _names(client: Client, actors: Sequence[str], since: str | None) -> dict[str, str]:
    """Names for the actors that are ids (correlation or event ids), from the audit trail."""
    ids = list(dict.fromkeys(actor for actor in actors if views.is_id(actor)))[:MAX_NAMED_ACTORS]
    names = {}
    for correlation_id in ids:
        try:
            entries = client.call("GET", "ops/audit", params={
                "correlation_id": correlation_id, "since": (since or "")[:10] or None, "limit": 50})["items"]
        except ApiFailure:
            break  # names are a courtesy: the view still shows the ids
        name = views.name_from_audit(entries)
        if name:
            names[correlation_id] = name
    return names


def _split(items: Sequence[str], what: str) -> dict[str, int]:
    split = {}
    for item in items:
        name, sep, percent = item.partition("=")
        if not sep or not percent.strip().isdigit():
            raise ApiFailure(f"{what}: expected deployment=percent, got {item!r}")
        split[name.strip()] = int(percent)
    return split


def _model_ref(text: str) -> dict[str, str]:
    location, _, rest = text.partition("/")
    name, _, version = rest.partition("/")
    if not (location and name and version) or "/" in version:
        raise ApiFailure(f"--model: expected LOCATION/NAME/VERSION (e.g. registry:shared/credit-risk/2), got {text!r}")
    return {"location": location, "name": name, "version": version}


def _json_file(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as error:
        raise ApiFailure(f"{what}: cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise ApiFailure(f"{what}: {path} is not JSON: {error}") from None
