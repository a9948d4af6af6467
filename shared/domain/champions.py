"""A rule's champion history: which version served its endpoint from when to when, how it came to
serve and why it stopped (replaced by a newer version, rolled back, undone). Pure.

The controller keeps one record per rule (`champion-history/<rule>`) and calls `changed` each time
it writes the rule's champion; the admin API serves the record (`GET ops/champions/{rule}/history`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

KIND = "champion-history"
MAX_TERMS = 200  # the oldest terms go first: the record stays one small blob


class Term(BaseModel):
    """One version's time as the rule's champion."""

    model_config = ConfigDict(extra="allow")

    model: str
    version: str
    endpoint: str | None = None
    workspace: str | None = None
    deployment: str | None = None
    since: datetime
    until: datetime | None = Field(None, description="None while it serves")
    began: str = Field("", description="how it became the champion")
    ended: str | None = Field(None, description="why it stopped: replaced by vN, rolled back (why), undone (by whom)")


class ChampionHistory(BaseModel):
    """Every term of a rule's champions, oldest first; the last is open while a champion serves."""

    model_config = ConfigDict(extra="allow")

    rule: str
    terms: list[Term] = Field(default_factory=list)


def changed(stored: dict[str, Any] | None, rule: str, before: dict[str, Any] | None, after: dict[str, Any],
            ended: str | None, now: datetime) -> dict[str, Any]:
    """The history once the champion `before` gave way to `after` (`{}`: none serves), as stored.

    Taking the same change again changes nothing, so a move the controller repeats is recorded once.
    A champion crowned before any history was kept gets its term when it ends.
    """
    history = ChampionHistory.model_validate(stored) if stored else ChampionHistory(rule=rule)
    current = history.terms[-1] if history.terms and history.terms[-1].until is None else None
    if after and current is not None and _same(current, after):
        return history.model_dump(mode="json")
    why = ended or "no longer the champion"
    if current is not None:
        current.until, current.ended = now, why
    elif before:
        history.terms.append(_term(before, _since(before, now), "before the history was kept", until=now, ended=why))
    if after:
        if before and _same_record(before.get("previous"), after):
            began = f"serving again after v{before['version']}: {why}"
        else:
            began = f"rolled out on {after.get('endpoint') or 'its endpoint'}"
        history.terms.append(_term(after, now, began))
    history.terms = history.terms[-MAX_TERMS:]
    return history.model_dump(mode="json")


def _term(champion: dict[str, Any], since: datetime, began: str, until: datetime | None = None,
          ended: str | None = None) -> Term:
    return Term(model=str(champion.get("model")), version=str(champion.get("version")),
                endpoint=champion.get("endpoint"), workspace=champion.get("workspace"),
                deployment=champion.get("deployment"), since=since, until=until, began=began, ended=ended)


def _since(champion: dict[str, Any], now: datetime) -> datetime:
    try:
        return datetime.fromisoformat(str(champion["since"]))
    except (KeyError, ValueError):
        return now


def _same(term: Term, champion: dict[str, Any]) -> bool:
    return term.model == champion.get("model") and term.version == str(champion.get("version"))


def _same_record(one: dict[str, Any] | None, other: dict[str, Any]) -> bool:
    if not one:
        return False
    return one.get("model") == other.get("model") and str(one.get("version")) == str(other.get("version"))
