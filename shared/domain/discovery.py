"""Discovery: what the resync lists of a workspace's model versions, and where its listing stands.

Events are hints (Event Grid delivers at least once, and not at all when a delivery is lost), so each
resync lists the versions registered in every watched workspace since its watermark and starts the
lifecycle of any that matches a rule and has none, as the ModelRegistered reaction would have.

The listing is bounded: newest first, at most `LIMIT` versions per workspace and period. A listing that
hits the bound leaves a backlog: the next period lists the versions older than the oldest it got (down
to the watermark), and so on until one comes back short; only then does the watermark move, to the
newest creation time seen over the whole pass. The watermark is kept `OVERLAP` behind what was seen, for
clock skew between Azure ML's front ends and for versions that show up in a listing late (eventual
consistency): a version seen twice is found to have its lifecycle already, and costs nothing more.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import Field

from shared.domain.records import Record, Timestamp

LIMIT = 200
"""Versions listed per workspace and period at most; the rest are listed in the next periods."""
OVERLAP = timedelta(minutes=10)
"""How far behind the newest creation time seen each listing starts again."""
FIRST_LOOKBACK = timedelta(hours=24)
"""How far back the very first listing of a workspace looks: versions registered before the app watched
the workspace are not its work, but those of the last day may be ones whose events were lost."""


class Discovery(Record):
    """Where the listing of one workspace stands."""

    watermark: Timestamp = Field(description="every version created before this, less OVERLAP, has been listed")
    backlog_before: Timestamp | None = Field(
        None, description="a pass in progress: versions created at or before this, down to the watermark, "
                          "are still to be listed")
    pass_newest: Timestamp | None = Field(None, description="the newest creation time the pass has seen so far")
    listed: int = Field(0, description="versions the last period listed")
    started: int = Field(0, description="lifecycles the last period started")
    time: Timestamp | None = Field(None, description="when the last period ran")


def first(now: datetime) -> Discovery:
    """A workspace never listed before."""
    return Discovery(watermark=now - FIRST_LOOKBACK)


def window(state: Discovery) -> tuple[datetime, datetime | None]:
    """The creation times this period lists: from (since), and up to (before; None: up to now)."""
    return state.watermark - OVERLAP, state.backlog_before


def advanced(state: Discovery, created: list[datetime], limit: int, now: datetime, started: int) -> Discovery:
    """Where the listing stands after a period that listed versions created at `created` (newest first)."""
    seen = [moment for moment in (state.pass_newest, *created[:1]) if moment is not None]
    newest = max(seen) if seen else None
    if len(created) < limit:  # the window is exhausted: the pass is over
        watermark = max(state.watermark, newest) if newest is not None else state.watermark
        return Discovery(watermark=watermark, listed=len(created), started=started, time=now)
    oldest = created[-1]
    if state.backlog_before is not None and oldest >= state.backlog_before:
        # A page of versions that all share one creation time: move on past it rather than list it forever.
        oldest = state.backlog_before - timedelta(microseconds=1)
    return Discovery(watermark=state.watermark, backlog_before=oldest, pass_newest=newest, listed=len(created),
                     started=started, time=now)
