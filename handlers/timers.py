"""Timers: the resync that finds work no event announced, and the rollout ticks.

The app is imported inside the functions, on their first call: a cold start indexes them without it
(see docs/cold-start.md).
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.bindings import setting_expression

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("resync")
@bp.timer_trigger(arg_name="timer", schedule=setting_expression("MLOPS_RESYNC_SCHEDULE"), run_on_startup=False)
def resync(timer: func.TimerRequest) -> None:
    """Reconcile every lifecycle in flight and every rollout from platform state."""
    from shared.adapters import telemetry
    from shared.adapters.azureml.eventfilters import warn_once
    from shared.bootstrap import services
    from shared.reactor import reactions

    warn_once(services().platform)  # the process's first resync checks the run events' Event Grid filters
    with telemetry.span("resync", kind="consumer"):
        results = reactions.resync(services())
    log.info("resync: %s", results or "nothing in flight")


@bp.function_name("rollout_tick")
@bp.timer_trigger(arg_name="timer", schedule=setting_expression("MLOPS_ROLLOUT_SCHEDULE"), run_on_startup=False)
def rollout_tick(timer: func.TimerRequest) -> None:
    """Advance every active rollout by one decision."""
    from shared.adapters import telemetry
    from shared.bootstrap import services
    from shared.reactor import reactions

    with telemetry.span("rollout_tick", kind="consumer"):
        results = reactions.tick_rollouts(services())
    if results:
        log.info("rollout tick: %s", results)
