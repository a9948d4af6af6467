"""The local Azure ML sandbox: the MLPlatform port with real work, on Azurite and ONNX Runtime.

State lives in the blob container `MLOPS_SANDBOX_CONTAINER`; events go to
`MLOPS_SANDBOX_EVENTS_URL` (the Functions host's Event Grid webhook); test jobs run in
detached processes; online endpoints are served by `python -m shared.platform.sandbox.server`.
"""

from shared.platform.sandbox.platform import SandboxPlatform
from shared.platform.sandbox.scoring import ScoringFailed
from shared.platform.sandbox.store import Rejected

__all__ = ["Rejected", "SandboxPlatform", "ScoringFailed"]
