"""The rules an admin's traffic change must follow, checked against the endpoint as it is.

They are Azure ML's own rules, checked before the long-running update starts so that
the admin hears at once which deployment or number is wrong, and why.
"""

from __future__ import annotations

from shared.domain.ports import Endpoint
from shared.ops.errors import ApiError

MAX_MIRROR_PERCENT = 50


def check(endpoint: Endpoint, traffic: dict[str, int], mirror: dict[str, int]) -> None:
    """Raise ApiError naming the field when the split cannot be applied to `endpoint`."""
    states = {deployment.name: deployment.provisioning_state for deployment in endpoint.deployments}
    for field, split in (("traffic", traffic), ("mirror_traffic", mirror)):
        for name, percent in split.items():
            if name not in states:
                present = ", ".join(sorted(states)) or "none"
                raise ApiError(400, f"deployment {name!r} is not on endpoint {endpoint.name!r} "
                                    f"(its deployments: {present})", f"{field}.{name}")
            state = states[name].lower()
            if percent and state == "failed":
                raise ApiError(400, f"deployment {name!r} failed to provision; it cannot take traffic",
                               f"{field}.{name}")
            if percent and state != "succeeded":
                raise ApiError(409, f"deployment {name!r} is {states[name]}; it can take traffic once it has "
                                    "succeeded", f"{field}.{name}")
    total = sum(traffic.values())
    if total != 100 and not (total == 0 and not endpoint.deployments):
        raise ApiError(400, f"traffic must sum to 100, got {total}", "traffic")
    mirrored = {name: percent for name, percent in mirror.items() if percent}
    if sum(mirrored.values()) > MAX_MIRROR_PERCENT:
        raise ApiError(400, f"mirror traffic is at most {MAX_MIRROR_PERCENT}% in total, got "
                            f"{sum(mirrored.values())}%", "mirror_traffic")
    if len(mirrored) > 1:
        raise ApiError(400, f"mirror traffic goes to one deployment at most, got {sorted(mirrored)}", "mirror_traffic")
    for name in mirrored:
        if traffic.get(name):
            raise ApiError(400, f"deployment {name!r} takes {traffic[name]}% live traffic and cannot also take "
                                "mirror traffic", f"mirror_traffic.{name}")
