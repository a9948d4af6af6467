"""Every `opsctl ...` command the app tells people to run, in its notifications, means what the
notification says when opsctl's own parser reads it: the command, the model and version (or the
endpoint), approve or reject, the reason.

The notifications are built for real (the review a version waits for, a rollout's manual gate), and
every backquoted `opsctl ...` in the text of shared/ must come from one of them: a new notification
naming opsctl fails here until it is built below and its commands checked. The notification once said
`opsctl review credit-risk 5 approve`, which opsctl parsed as the decision `credit-risk` on version
`approve` of a model `5`."""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsctl import cli
from shared.domain import lifecycle, rollout
from shared.domain.policy import HealthGates, Review, RolloutPlan
from shared.domain.ports import Deployment, DeploymentMetrics, Endpoint, ModelVersion
from shared.domain.records import Lifecycle, Phase, Split, Stage

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = re.compile(r"`(opsctl [^`]+)`")
REASON = "checked the gate table and the drift report"  # what a person writes for `"..."`
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

Expected = dict[str, Any]  # the parsed arguments a command must have (`command` is the subcommand)


# The notifications, built for real -------------------------------------------------------------------


def review_needed() -> tuple[str, list[Expected]]:
    """A version that passed its gates and waits for a person's review."""
    record = Lifecycle(model="credit-risk", version="5", workspace="dev", uri="azureml:credit-risk:5",
                       rule="credit-risk", stage=Stage.PASSED, test_job="test-credit-risk-v5")
    model = ModelVersion(location="dev", name="credit-risk", version="5", created_by="alice@contoso.test")
    move = lifecycle.review_needed(record, Review(four_eyes=True, by_tag=True), model, NOW)
    assert move is not None
    [told] = move.told
    return told.summary, [
        {"command": "review", "decision": "approve", "name": "credit-risk", "version": "5", "reason": REASON},
        {"command": "review", "decision": "reject", "name": "credit-risk", "version": "5", "reason": REASON},
    ]


def rollout_awaiting_approval() -> tuple[str, list[Expected]]:
    """A rollout whose next step is a manual gate."""
    plan = RolloutPlan(workspace="prod", endpoint="credit-risk", steps=[10, 50, 100], bake_seconds=60,
                       gates=HealthGates(min_requests=10), manual_gates=[50])
    live = Endpoint(workspace="prod", name="credit-risk", provisioning_state="Succeeded",
                    traffic={"credit-risk-v4": 100}, mirror_traffic={},
                    deployments=[Deployment(name=name, model_uri=f"azureml:credit-risk:{name[-1]}",
                                            provisioning_state="Succeeded")
                                 for name in ("credit-risk-v4", "credit-risk-v5")])
    started = rollout.begin("credit-risk", plan, "credit-risk", "5", "credit-risk-v5", live, "test", NOW,
                            "created").record
    at_ten = started.model_copy(update={"phase": Phase.STEP, "step": 0, "step_started": NOW, "target": Split(
        traffic={"credit-risk-v4": 90, "credit-risk-v5": 10})})
    live_now = live.model_copy(update={"traffic": {"credit-risk-v4": 90, "credit-risk-v5": 10}})
    move = rollout.advance(at_ten, live_now, NOW + timedelta(seconds=61), "timer",
                           DeploymentMetrics(requests=100, errors=0, latency_p95_ms=20))
    [told] = [action for action in move.actions if isinstance(action, rollout.Tell)]
    assert told.kind == "rollout.awaiting_approval"
    return told.summary, [
        {"command": "approve", "workspace": "prod", "endpoint": "credit-risk"},
        {"command": "abort", "workspace": "prod", "endpoint": "credit-risk"},
    ]


NOTIFICATIONS: dict[str, Callable[[], tuple[str, list[Expected]]]] = {
    "model.awaiting_review": review_needed,
    "rollout.awaiting_approval": rollout_awaiting_approval,
}


# Reading a command as opsctl does --------------------------------------------------------------------


def meaning(snippet: str, expected: Expected) -> dict[str, Any]:
    """What opsctl's parser makes of `snippet` (placeholders filled in), for the keys `expected` has."""
    words = shlex.split(snippet)
    assert words[0] == "opsctl", snippet
    argv = [REASON if word == "..." else word for word in words[1:]]
    try:
        args = cli.parser().parse_args(argv)
    except SystemExit:
        return {"parse": f"opsctl refuses {argv}"}
    return {name: getattr(args, name, None) for name in expected}


def problems(snippet: str, expected: Expected) -> list[str]:
    got = meaning(snippet, expected)
    return [f"`{snippet}`: {name} is {got.get(name)!r}, not {value!r}" for name, value in expected.items()
            if got.get(name) != value] + ([got["parse"]] if "parse" in got else [])


@pytest.mark.parametrize("kind", sorted(NOTIFICATIONS))
def test_each_advertised_command_means_what_the_notification_says(kind: str) -> None:
    text, expected = NOTIFICATIONS[kind]()
    snippets = SNIPPET.findall(text)
    assert len(snippets) == len(expected), (kind, snippets)
    for snippet, wanted in zip(snippets, expected, strict=True):
        assert not problems(snippet, wanted), problems(snippet, wanted)


def test_the_old_order_of_the_review_command_would_fail_here() -> None:
    """`opsctl review credit-risk 5 approve` parses, but as another decision, model and version."""
    wanted = {"command": "review", "decision": "approve", "name": "credit-risk", "version": "5", "reason": REASON}
    assert problems('opsctl review credit-risk 5 approve --reason "..."', wanted) == [
        "`opsctl review credit-risk 5 approve --reason \"...\"`: decision is 'credit-risk', not 'approve'",
        "`opsctl review credit-risk 5 approve --reason \"...\"`: name is '5', not 'credit-risk'",
        "`opsctl review credit-risk 5 approve --reason \"...\"`: version is 'approve', not '5'",
    ]
    assert problems("opsctl approve prod", {"command": "approve", "workspace": "prod", "endpoint": "x"}) == [
        "`opsctl approve prod`: command is None, not 'approve'",
        "`opsctl approve prod`: workspace is None, not 'prod'",
        "`opsctl approve prod`: endpoint is None, not 'x'",
        "opsctl refuses ['approve', 'prod']",
    ]


# Every opsctl command the app's code names is one of the above --------------------------------------


def templates() -> Iterator[tuple[str, str]]:
    """(file, text) of each backquoted `opsctl ...` in shared/'s strings (docstrings aside), an f-string's
    fields as `{}`."""
    for path in sorted((ROOT / "shared").rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                      and node.body and isinstance(node.body[0], ast.Expr)}
        parts = {id(value) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for value in node.values}
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                text = "".join(value.value if isinstance(value, ast.Constant) else "{}" for value in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts | docstrings:
                text = node.value
            else:
                continue
            for found in SNIPPET.findall(text):
                yield str(path.relative_to(ROOT)), found


def test_every_opsctl_command_in_the_apps_text_is_built_and_checked_here() -> None:
    found = list(templates())
    assert found, "no `opsctl ...` in shared/: has the notification text moved?"
    built = [snippet for build in NOTIFICATIONS.values() for snippet in SNIPPET.findall(build()[0])]
    for where, template in found:
        literal = template.split("{}")[0].split()  # the words before the first field: `opsctl review approve`
        assert any(snippet.split()[:len(literal)] == literal for snippet in built), (
            f"{where} tells people to run `{template}`, which no notification built in this test has: "
            "build it in NOTIFICATIONS and say what it must mean")


# Every opsctl command the README, docs/ and `opsctl --help` show ----------------------------------------

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_LINE = re.compile(r"^\s*(?:\.venv/bin/)?(?:python -m )?(opsctl(?:\s.*)?)$")
PLACEHOLDER = "x"  # what a `<key from setaside>`, `ID` or `JOB` stands for in a check
SAMPLES = {"SECONDS": "5", "N": "10", "KIND": "deadletter"}
# What a positional word must look like for the command to mean what the page says: the local stack's names.
KINDS: dict[str, Callable[[str], bool]] = {
    "decision": lambda word: word in ("approve", "reject"),
    "workspace": lambda word: word in ("dev", "prod"),
    "endpoint": lambda word: word == "credit-risk",
    "location": lambda word: word in ("dev", "prod", "registry:shared"),
    "name": lambda word: word.startswith("credit-risk"),
    "rule": lambda word: word == "credit-risk",
    "version": lambda word: word.isdigit() or word == PLACEHOLDER,
    "kind": lambda word: word in ("rejected", "ignored", "deadletter"),
}


def shown_commands() -> Iterator[tuple[str, str]]:
    """(where, command line) of each opsctl command a page shows: the lines of its code blocks (fenced or
    indented) that run opsctl, its backquoted `opsctl <command> ...`, and the example lines of opsctl's
    own --help."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        where = str(page.relative_to(ROOT))
        fenced = False
        for line in text.splitlines():
            if line.startswith("```"):
                fenced = not fenced
            elif (fenced or line.startswith("    ")) and (found := COMMAND_LINE.match(line)):
                yield where, found[1]
        for found in re.findall(r"`((?:\.venv/bin/)?(?:python -m )?opsctl [a-z][^`]*)`", text):
            yield where, found
    for line in (cli.__doc__ or "").splitlines():
        if line.startswith("    ") and (found := COMMAND_LINE.match(line)):
            yield "opsctl --help", found[1]


def expanded(line: str) -> list[list[str]]:
    """The command lines `line` stands for: comments and prose cut, `a; b` split, each `[optional part]`
    with and without it, each `a|b` alternative apart, placeholders filled in."""
    line = re.sub(r"\s(#|\s{2,}[a-z(]).*$", "", line.split("`")[0])  # a comment, or the prose beside it
    line = re.sub(r"^(?:\.venv/bin/)?(?:python -m )?", "", line)
    out: list[list[str]] = []
    for part in line.split(";"):
        part = part.strip()
        if not part.startswith("opsctl"):
            continue
        variants = [part]
        while any("[" in variant for variant in variants):
            variants = [v for variant in variants for v in _optional(variant)]
        for variant in variants:
            words = shlex.split(re.sub(r"<[^>]*>", PLACEHOLDER, variant))
            choices = [word.split("|") if "|" in word and not word.startswith("-") else [word] for word in words]
            width = max(len(c) for c in choices)
            for n in range(width):
                command = [SAMPLES.get(c[n % len(c)], PLACEHOLDER if re.fullmatch(r"[A-Z]+", c[n % len(c)])
                                       else c[n % len(c)]).replace("...", REASON) for c in choices]
                if command not in out:
                    out.append(command)
    return out


def _optional(text: str) -> list[str]:
    """`text` with its innermost `[...]` left out, and with it kept (its alternatives `a|b` one by one)."""
    found = re.search(r"\[([^\[\]]*)\]", text)
    if not found:
        return [text]
    before, after = text[:found.start()], text[found.end():]
    return [" ".join((before + after).split()), *(before + choice + after for choice in found[1].split("|")
                                                   if choice.startswith("-") or "|" not in found[1])]


def what_it_means(words: list[str]) -> list[str]:
    """The ways `opsctl <words>` does not mean what it says: refused, another command, a positional that is no
    such thing."""
    import argparse

    sub = next(a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction))
    if len(words) == 2:  # prose naming a command: `opsctl score`
        return [] if words[1] in sub.choices or words[1] == "--help" else [f"no command {words[1]!r}"]
    try:
        args = cli.parser().parse_args(words[1:])
    except SystemExit:
        return [f"opsctl refuses {' '.join(words)!r}"]
    problems = [] if args.command == words[1] else [f"{words!r} runs {args.command}"]
    for action in sub.choices[args.command]._actions:
        check = KINDS.get(action.dest)
        value = getattr(args, action.dest, None)
        if not action.option_strings and check and isinstance(value, str) and not check(value):
            problems.append(f"{' '.join(words)!r}: {action.dest} {value!r} is not one")
    return problems


def test_the_pages_and_help_show_opsctl_commands() -> None:
    found = {where for where, _ in shown_commands()}
    assert {"README.md", "docs/admin-api.md", "opsctl --help"} <= found


@pytest.mark.parametrize("where", sorted({where for where, _ in shown_commands()}))
def test_every_command_a_page_shows_parses_and_means_what_it_says(where: str) -> None:
    lines = [line for page, line in shown_commands() if page == where]
    wrong = [problem for line in lines for words in expanded(line) for problem in what_it_means(words)]
    assert not wrong, wrong


def test_the_reading_of_a_page_s_command_lines() -> None:
    assert expanded("opsctl pause|resume prod credit-risk --reason \"error budget\"") == [
        ["opsctl", "pause", "prod", "credit-risk", "--reason", "error budget"],
        ["opsctl", "resume", "prod", "credit-risk", "--reason", "error budget"]]
    assert expanded("opsctl setaside [--kind deadletter];  opsctl replay deadletter <key from setaside>") == [
        ["opsctl", "setaside"], ["opsctl", "setaside", "--kind", "deadletter"],
        ["opsctl", "replay", "deadletter", "x"]]
    assert expanded("opsctl status [--watch [SECONDS]]            health checks") == [
        ["opsctl", "status"], ["opsctl", "status", "--watch"], ["opsctl", "status", "--watch", "5"]]
    assert what_it_means(["opsctl", "score"]) == [] and what_it_means(["opsctl", "scores"]) == ["no command 'scores'"]
    assert what_it_means(["opsctl", "review", "credit-risk", "5", "approve"]) == [
        "'opsctl review credit-risk 5 approve': decision 'credit-risk' is not one",
        "'opsctl review credit-risk 5 approve': name '5' is not one",
        "'opsctl review credit-risk 5 approve': version 'approve' is not one"]
