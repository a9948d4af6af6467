"""Timers: the resync that finds work no event announced, and the rollout ticks."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.bootstrap import services

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("resync")
@bp.timer_trigger(arg_name="timer", schedule="%MLOPS_RESYNC_SCHEDULE%", run_on_startup=False)
def resync(timer: func.TimerRequest) -> None:
    """Reconcile every lifecycle in flight and every rollout from platform state."""
    from shared.adapters import telemetry
    from shared.adapters.azureml.eventfilters import warn_once
    from shared.reactor import reactions

    warn_once(services().platform)  # the process's first resync checks the run events' Event Grid filters
    with telemetry.span("resync", kind="consumer"):
        results = reactions.resync(services())
    log.info("resync: %s", results or "nothing in flight")


@bp.function_name("rollout_tick")
@bp.timer_trigger(arg_name="timer", schedule="%MLOPS_ROLLOUT_SCHEDULE%", run_on_startup=False)
def rollout_tick(timer: func.TimerRequest) -> None:
    """Advance every active rollout by one decision."""
    from shared.adapters import telemetry
    from shared.reactor import reactions

    with telemetry.span("rollout_tick", kind="consumer"):
        results = reactions.tick_rollouts(services())
    if results:
        log.info("rollout tick: %s", results)
