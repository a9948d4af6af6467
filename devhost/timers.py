"""Timer triggers on their NCRONTAB schedule (six fields, seconds first), in UTC."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import azure.functions as func
from azure.functions.timer import TimerRequest
from croniter import croniter

from devhost.listener import Listener

log = logging.getLogger("devhost.timers")


def next_occurrence(schedule: str, after: datetime) -> datetime:
    """The next time an NCRONTAB expression fires after `after`."""
    fields = schedule.split()
    if len(fields) != 6:
        raise ValueError(f"NCRONTAB needs six fields (second minute hour day month day-of-week): {schedule!r}")
    return croniter(schedule, after, second_at_beginning=True).get_next(datetime)


class TimerSchedule(Listener):
    """Runs one function on its schedule until stopped."""

    def __init__(
        self, function_name: str, schedule: str, run: Callable[[func.TimerRequest], None], run_on_startup: bool
    ) -> None:
        next_occurrence(schedule, datetime.now(UTC))
        super().__init__(f"timer-{function_name}")
        self.function_name, self.schedule = function_name, schedule
        self._run, self._run_on_startup = run, run_on_startup

    def _loop(self) -> None:
        if self._run_on_startup:
            self._invoke(past_due=False)
        due = next_occurrence(self.schedule, datetime.now(UTC))
        while not self._stop.wait(max(0.0, (due - datetime.now(UTC)).total_seconds())):
            late = (datetime.now(UTC) - due).total_seconds()
            self._invoke(past_due=late > 1.0)
            due = next_occurrence(self.schedule, max(due, datetime.now(UTC)))

    def _invoke(self, past_due: bool) -> None:
        try:
            self._run(TimerRequest(past_due=past_due))
        except Exception:
            log.exception("Executed 'Functions.%s' (Failed)", self.function_name)
