"""What the function app's triggers name: its queues and the app settings the host resolves in bindings.

It imports nothing: `function_app` registers its triggers from it at every cold start, before any
of the app's own modules is needed (see docs/cold-start.md).
"""

WORK_QUEUE = "aml-work"
"""The queue intake puts each event on and `aml_work` takes it from."""

# The settings function bindings read (`%NAME%`): the Functions host resolves them when it starts, so
# each must be set wherever the app runs (local.settings.json, infra/, the local host); see
# `shared.settings.binding_defaults`.
BINDING_SETTINGS = (
    "MLOPS_RESYNC_SCHEDULE",
    "MLOPS_ROLLOUT_SCHEDULE",
    "MLOPS_SCORING_INPUT_CONTAINER",
    "MLOPS_SCORING_QUEUE",
)


def setting_expression(name: str) -> str:
    """`%NAME%`, the binding expression the Functions host replaces with app setting NAME at start."""
    if name not in BINDING_SETTINGS:
        raise ValueError(f"{name} is not one of the settings bindings read: {', '.join(BINDING_SETTINGS)}")
    return f"%{name}%"
