"""opsctl: one command per route of the admin API (and the scoring routes).

    opsctl login [--device-code | --browser | --azure-cli]   sign in once; later commands are silent
    opsctl whoami;  opsctl token;  opsctl logout;  opsctl signin-info
    opsctl status [--watch [SECONDS]]            health checks and rollouts
    opsctl rollouts [--state S] [--watch]        every endpoint's rollout, with the endpoint's live split
    opsctl rollout prod credit-risk [--watch]    one rollout: step, split, last analysis, history
    opsctl history prod credit-risk [--limit N] [--next TOKEN | --all]   finished rollouts, how they ended
    opsctl start-rollout registry:shared credit-risk 2 --rule credit-risk [--plan plan.json]
    opsctl pause|resume|approve|promote|abort|undo prod credit-risk [--reason "..."]
    opsctl traffic prod credit-risk credit-risk-v1=90 credit-risk-v2=10 [--mirror credit-risk-v3=10]
    opsctl promote-model dev credit-risk 2 [--target registry:shared]
    opsctl retrain credit-risk [--request-id ID]
    opsctl lifecycles [--stage S] [--model M] [--rule R] [--limit N] [--next TOKEN | --all]
    opsctl lifecycle credit-risk 2
    opsctl champions credit-risk                 a rule's champions: who served when, why each stopped
    opsctl review approve|reject credit-risk 2 --reason "..."
    opsctl audit [--since 2026-11-01] [--limit 50] [--correlation-id ID] [--subject S] [--action A] [--next TOKEN]
    opsctl setaside [--kind rejected|ignored|deadletter|invalid] [--limit N] [--next TOKEN | --all]
    opsctl replay KIND KEY
    opsctl score submit scoring-input/batch.csv --model registry:shared/credit-risk/2;  opsctl score status JOB
    opsctl validate-policy policy/policy.yaml;  opsctl health;  opsctl openapi

Signing in: a person's command sends their Entra ID access token for the app (Authorization:
Bearer); the app checks it and the app role the route needs (MLOps.Reader, Operator, Approver,
Admin): 401 means sign in again, 403 names the role. `opsctl login` asks the app where to sign in
(GET /api/ops/signin), then signs in by device code (the default: open the page it prints on
stderr and enter the code), in a browser (--browser), or checks that the Azure CLI gives a token
(--azure-cli). It saves the account (azure-identity's AuthenticationRecord, no secret) and where
to sign in under $OPSCTL_CONFIG_DIR (default ~/.config/opsctl/), files 0600; the tokens stay in
azure-identity's persistent token cache "opsctl": the keyring, or on Linux without one an
unencrypted file, ~/.IdentityService/opsctl.nocae (0600). `--azure-cli` (or
$OPSCTL_CREDENTIAL=azure-cli) takes every token from the Azure CLI (az login) instead. opsctl signs
in only at a Microsoft Entra login host, or at a loopback one for an app on this machine (a local
Entra ID stand-in, whose CA file $REQUESTS_CA_BUNDLE names), and sends a token only over https
(plain http to an app on this machine). Only `opsctl token` prints a token.

`--json` prints the API's JSON as it answered. The URL comes from `--url` or `$MLOPS_API_URL`,
else the local host (as `./dev host` wrote it in `.localdev/connection.json`, or :7071). The
function key is for the machines' routes only (`health`, `score`, and the health part of
`status`): from `--key`, `$MLOPS_FUNCTION_KEY`, `--key-file` / `$MLOPS_KEY_FILE`, or the local
host's `.localdev/keys.json` (for a local URL only). An error prints the API's message (and the
field at fault) on stderr and exits with 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from opsctl import auth, style
from opsctl import commands as c
from opsctl.auth import Auth, CredentialFactory, Store
from opsctl.client import (
    DEFAULT_URL,
    URL_ENV,
    ApiFailure,
    Client,
    config_dir,
    default_url,
    function_key,
    trust_local_ca,
)
from opsctl.commands import Command, Shown

ROLLOUT_ACTIONS = ("pause", "resume", "approve", "promote", "abort", "undo")
CLEAR = "\x1b[H\x1b[2J"


# Arguments ------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="opsctl", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    main.add_argument("--url", default=default_url(),
                      help=f"the app (${URL_ENV}; else .localdev/connection.json's host, else {DEFAULT_URL})")
    main.add_argument("--key", help="function key, for health and score only ($MLOPS_FUNCTION_KEY; else --key-file)")
    main.add_argument("--key-file", type=Path,
                      help="keys JSON with a 'function' key, for health and score only ($MLOPS_KEY_FILE; "
                           "default .localdev/keys.json, local URLs)")
    main.add_argument("--azure-cli", action="store_true",
                      help="take people's tokens from the Azure CLI (az login), not opsctl login's sign-in "
                           f"(${auth.CREDENTIAL_ENV}=azure-cli)")
    main.add_argument("--timeout", type=float, default=60, help="seconds per request")
    main.add_argument("--json", action="store_true", help="print the API's JSON as it answered")
    # Every command takes --json too, after its own arguments (SUPPRESS: absent, it leaves the global one).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the API's JSON")
    watchable = argparse.ArgumentParser(add_help=False)
    watchable.add_argument("--watch", nargs="?", type=float, const=2.0, metavar="SECONDS",
                           help="refresh every SECONDS (2 by default) until Ctrl-C")
    watchable.add_argument("--count", type=int, metavar="N", help="with --watch: stop after N refreshes")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, run: Command, help: str, *, watch: bool = False,
            into: Any = commands) -> argparse.ArgumentParser:
        command = into.add_parser(name, help=help, description=help,
                                  parents=[common, watchable] if watch else [common])
        command.set_defaults(run=run)
        return command

    def endpoint(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument("workspace")
        command.add_argument("endpoint")
        return command

    def paged(command: argparse.ArgumentParser, limit: int | None = None) -> argparse.ArgumentParser:
        command.add_argument("--limit", type=int, default=limit, help="the most items in a page (API default: 100)")
        pages = command.add_mutually_exclusive_group()
        pages.add_argument("--next", metavar="TOKEN", help="the page after the one that printed this token")
        pages.add_argument("--all", action="store_true", help="every page, one after another")
        return command

    def model(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument("name")
        command.add_argument("version")
        return command

    command = add("login", c.login, "sign in (once): later commands get tokens silently")
    command.description = (
        "Sign in (once): later commands get tokens silently. opsctl asks the app where to sign in (GET "
        "/api/ops/signin), signs in there, and saves the account (azure-identity's AuthenticationRecord, no "
        "secret) under $OPSCTL_CONFIG_DIR (default ~/.config/opsctl/), files 0600. The tokens stay in "
        f"azure-identity's persistent token cache {auth.CACHE_NAME!r}: the keyring where there is one; on Linux "
        "without one, an unencrypted file, ~/.IdentityService/opsctl.nocae (0600: keep it yours alone). "
        "`opsctl logout` forgets the account (its cached tokens stay, unused, until they expire).")
    how = command.add_mutually_exclusive_group()
    how.add_argument("--device-code", dest="method", action="store_const", const=auth.DEVICE_CODE,
                     help="the default: open the page printed on stderr, anywhere, and enter the code")
    how.add_argument("--browser", dest="method", action="store_const", const=auth.BROWSER,
                     help="sign in in this machine's browser (redirect http://localhost)")
    how.add_argument("--azure-cli", dest="method", action="store_const", const=auth.AZURE_CLI,
                     help="check that the Azure CLI (az login) gives a token for the app, and use it from now on")
    add("logout", c.logout, "forget the saved sign-in for the app")
    add("whoami", c.whoami, "who the token says is signed in: name, username, oid, roles (for display only)")
    add("token", c.token, "print an access token for the app (for curl and test.http: Authorization: Bearer)")
    add("signin-info", c.signin_info, "where the app has people sign in (GET ops/signin), and whether opsctl will")
    add("health", c.health, "the app's health checks (function key)")
    add("status", c.status, "health checks and rollouts", watch=True).set_defaults(state=None, endpoint=None)
    command = paged(add("rollouts", c.rollouts, "the endpoints' rollouts, by endpoint, a page at a time", watch=True))
    command.add_argument("--state", help="only rollouts in this state (the API names the states it knows)")
    command.add_argument("--endpoint")
    endpoint(add("rollout", c.rollout, "one rollout's progress and history", watch=True))
    paged(endpoint(add("history", c.history, "an endpoint's finished rollouts, newest first, a page at a time")))
    command = add("start-rollout", c.start_rollout, "roll a model version out by a rule's plan")
    command.add_argument("location", help="where deployments read the version: a workspace or registry:<name>")
    model(command)
    command.add_argument("--rule", required=True, help="the policy rule whose plan and notifications apply")
    command.add_argument("--plan", metavar="FILE", help="a JSON rollout plan replacing the rule's")
    for action in ROLLOUT_ACTIONS:
        endpoint(add(action, c.rollout_action, f"{action} the endpoint's rollout")).add_argument("--reason", default="")
    command = endpoint(add("traffic", c.traffic, "set an endpoint's traffic (pauses its rollout)"))
    command.add_argument("split", nargs="+", metavar="deployment=percent")
    command.add_argument("--mirror", nargs="+", metavar="deployment=percent")
    command = add("promote-model", c.promote_model, "copy a model version to registries (the rule's path by default)")
    command.add_argument("location", help="the workspace (or registry:<name>) holding the version")
    model(command)
    command.add_argument("--target", action="append", metavar="registry:NAME", help="a target, in order; repeatable")
    command = add("retrain", c.retrain, "submit a rule's retraining pipeline")
    command.add_argument("rule")
    command.add_argument("--request-id", help="names the job: the same id never retrains twice (default: now)")
    command = paged(add("lifecycles", c.lifecycles, "model lifecycles, by model and version, a page at a time"))
    command.add_argument("--stage", help="only this stage (the API names the stages it knows)")
    command.add_argument("--model")
    command.add_argument("--rule")
    model(add("lifecycle", c.lifecycle, "one model version's lifecycle, gates and history"))
    add("champions", c.champions, "a rule's champions: who served from when to when, and why each stopped"
        ).add_argument("rule")
    command = add("review", c.review, "approve or reject a model version waiting for review")
    command.add_argument("decision", help="approve or reject")
    model(command)
    command.add_argument("--reason", help="why, for the lifecycle and the audit trail (the API requires one)")
    command = paged(add("audit", c.audit, "the audit trail, newest page first (--next: the entries before)"), 50)
    command.add_argument("--since", help="ISO date or date-time")
    command.add_argument("--correlation-id")
    command.add_argument("--subject")
    command.add_argument("--action")
    command = paged(add("setaside", c.set_aside, "events set aside (rejected, ignored), dead letters and invalid "
                                                 "records, with replay keys"))
    command.add_argument("--kind", help="rejected, ignored, deadletter or invalid (every kind by default)")
    command = add("replay", c.replay, "replay a rejected or ignored event, or a dead letter")
    command.add_argument("kind", help="rejected, ignored or deadletter (as `setaside` lists it)")
    # Not `key`: that is the function key (`--key`), which a positional of the same name would replace.
    command.add_argument("record", metavar="KEY", help="the stored event's or work item's key")
    add("validate-policy", c.validate_policy, "check a policy file").add_argument("file")
    add("openapi", c.openapi, "the API's OpenAPI document")
    scoring = commands.add_parser("score", help="batch scoring jobs", description="batch scoring jobs")
    jobs = scoring.add_subparsers(dest="score_command", required=True, metavar="COMMAND")
    command = add("submit", c.score_submit, "score a blob with a model", into=jobs)
    command.add_argument("input", nargs="?", help="container/name of a .csv, .parquet or .jsonl blob")
    command.add_argument("--model", metavar="LOCATION/NAME/VERSION", help="a registered model")
    command.add_argument("--onnx", metavar="CONTAINER/PATH", help="an .onnx blob")
    command.add_argument("--output-container")
    command.add_argument("--output-path")
    command.add_argument("--format", help="csv or parquet")
    command.add_argument("--features", nargs="+")
    command.add_argument("--id-column", action="append")
    command.add_argument("--request", metavar="FILE", help="the whole request body as JSON instead")
    add("status", c.score_status, "a scoring job's progress", watch=True, into=jobs).add_argument("job")
    return main


def main(argv: Sequence[str] | None = None, out: TextIO | None = None,
         credentials: CredentialFactory | None = None) -> int:
    """Run opsctl; `credentials` makes the sign-in's credentials (azure-identity's; tests pass a fake)."""
    args = parser().parse_args(argv)
    out = out or sys.stdout
    name = " ".join(filter(None, [args.command, getattr(args, "score_command", None)]))
    # azure-identity logs each failure as a warning, which Python would print as well as opsctl's one line.
    for sdk in ("azure", "msal"):
        logging.getLogger(sdk).addHandler(logging.NullHandler())
    style.use(out, as_json=args.json)
    try:
        return _run(args, out, name, credentials or auth.azure_identity)
    except KeyboardInterrupt:
        print(f"opsctl {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`opsctl ... | head`): stop quietly, and keep Python's flush at exit from
        # raising again on the closed pipe (the Python docs' recipe, "Note on SIGPIPE").
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _run(args: argparse.Namespace, out: TextIO, name: str, credentials: CredentialFactory) -> int:
    with trust_local_ca(args.url):
        return _signed_in(args, out, name, credentials)


def _signed_in(args: argparse.Namespace, out: TextIO, name: str, credentials: CredentialFactory) -> int:
    try:
        signed = Auth(args.url, Store(config_dir()), credentials,
                      azure_cli=args.azure_cli or auth.azure_cli_from_env())
    except ApiFailure as failure:
        print(f"opsctl {name}: {failure}", file=sys.stderr)
        return 1
    client = Client(args.url, lambda: function_key(args.url, args.key, args.key_file), signed, args.timeout)

    def once() -> Shown:
        return args.run(client, args)

    if getattr(args, "watch", None) is not None:
        return watch(once, args.watch, args.json, out, name, args.count)
    try:
        shown = once()
    except ApiFailure as failure:
        print(f"opsctl {name}: {failure}", file=sys.stderr)
        return 1
    print(_render(shown, args.json), file=out)
    return 0


def watch(run: Callable[[], Shown], seconds: float, as_json: bool, out: TextIO, name: str,
          count: int | None = None, sleep: Callable[[float], None] = time.sleep) -> int:
    """Show `run()` every `seconds` until Ctrl-C (or `count` times): the screen redrawn on a
    terminal, one JSON document per line with `--json`. An error is shown and the watch goes on
    (an app restarting is worth watching through); the exit code is the last round's."""
    code, rounds = 0, 0
    clear = out.isatty() and not as_json
    try:
        while count is None or rounds < count:
            if rounds:
                sleep(max(seconds, 0.1))
            rounds += 1
            try:
                text, code = _render(run(), as_json, compact=True), 0
            except ApiFailure as failure:
                text, code = f"opsctl {name}: {failure}", 1
                if as_json:
                    print(text, file=sys.stderr)
                    continue
            stamp = "" if as_json else f"every {seconds:g} s, {datetime.now():%H:%M:%S} (Ctrl-C stops)\n\n"
            # On a terminal each round replaces the last; in a file or pipe a blank line parts them.
            before = CLEAR if clear else ("\n" if rounds > 1 and not as_json else "")
            print(before + stamp + text, file=out, flush=True)
    except KeyboardInterrupt:
        return 0
    return code


def _render(shown: Shown, as_json: bool, compact: bool = False) -> str:
    if as_json:
        return json.dumps(shown.document, separators=(",", ":")) if compact else json.dumps(shown.document, indent=2)
    return style.paint(shown.text)


if __name__ == "__main__":
    sys.exit(main())
