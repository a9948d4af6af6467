"""The local Azure ML service: what the app's azure-ai-ml adapter talks to on a machine without Azure.

It speaks the REST surface the adapter uses (ARM, registries, MLflow tracking, Azure
Monitor, batch and online scoring) over loopback TLS, with Azure's behaviour behind
it; each behaviour names its public source (SDK recordings, REST spec examples, docs).
Not part of the function app: it is never deployed.
"""

from __future__ import annotations

from localaml import (
    assets,
    batch,
    datastores,
    endpoints,
    events,
    jobs,
    mlflow,
    models,
    monitor,
    monitoring,
    registries,
    runhistory,
)

FEATURES = [
    registries.install, mlflow.install, monitor.install, batch.install, datastores.install, models.install,
    monitoring.install, jobs.install, endpoints.install, events.install, assets.install, runhistory.install,
]
