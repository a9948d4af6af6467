"""A rule's champion, and its champion history: which version served its endpoint from when to when,
how it came to serve and why it stopped (replaced by a newer version, rolled back, undone). Pure.

The controller keeps the rule's champion and one history per rule, and calls `changed` each time it
writes the rule's champion; the admin API serves the history (`GET ops/champions/{rule}/history`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from shared.domain.records import Timestamp

MAX_TERMS = 200  # the oldest terms go first: the record stays one small blob


class Champion(BaseModel):
    """The version that serves a rule's endpoint now, which the rule's new versions are judged against.

    Stored as the app always kept it (`since` as `datetime.isoformat` writes it); champions crowned by
    older versions of the app may lack `workspace`, `previous` or `since`, and still load.
    """

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    model: str
    version: str
    deployment: str | None = None
    endpoint: str | None = None
    workspace: str | None = None
    metrics: dict[str, float | None] = Field(default_factory=dict, description="its test metrics")
    since: Timestamp | None = None
    previous: Champion | None = Field(None, description="the champion it replaced, which an undo gives back "
                                                        "(one level: without its own previous)")

    def is_version(self, model: str, version: str) -> bool:
        return self.model == model and self.version == version

    @field_serializer("previous")
    def _one_level(self, previous: Champion | None) -> dict[str, Any] | None:
        """The champion it replaced is stored without its own `previous`, as it always was."""
        return previous.model_dump(mode="json", exclude={"previous"}) if previous else None


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


def changed(history: ChampionHistory | None, rule: str, before: Champion | None, after: Champion | None,
            ended: str | None, now: datetime) -> ChampionHistory:
    """The history once the champion `before` gave way to `after` (None: none serves).

    Taking the same change again changes nothing, so a move the controller repeats is recorded once.
    A champion crowned before any history was kept gets its term when it ends.
    """
    history = history.model_copy(deep=True) if history else ChampionHistory(rule=rule)
    current = history.terms[-1] if history.terms and history.terms[-1].until is None else None
    if after and current is not None and current.model == after.model and current.version == after.version:
        return history
    why = ended or "no longer the champion"
    if current is not None:
        current.until, current.ended = now, why
    elif before:
        history.terms.append(_term(before, before.since or now, "before the history was kept", until=now, ended=why))
    if after:
        if before and before.previous and before.previous.is_version(after.model, after.version):
            began = f"serving again after v{before.version}: {why}"
        else:
            began = f"rolled out on {after.endpoint or 'its endpoint'}"
        history.terms.append(_term(after, now, began))
    history.terms = history.terms[-MAX_TERMS:]
    return history


def _term(champion: Champion, since: datetime, began: str, until: datetime | None = None,
          ended: str | None = None) -> Term:
    return Term(model=champion.model, version=champion.version, endpoint=champion.endpoint,
                workspace=champion.workspace, deployment=champion.deployment, since=since, until=until, began=began,
                ended=ended)
