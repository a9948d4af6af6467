"""Traffic changes follow Azure ML's rules, checked against the endpoint before anything starts."""

from __future__ import annotations

import pytest

from shared.domain.ports import Deployment, Endpoint
from shared.ops.errors import ApiError
from shared.ops.traffic import check


def endpoint(**states: str) -> Endpoint:
    return Endpoint(workspace="prod", name="credit-risk", traffic={}, deployments=[
        Deployment(name=name, model_uri="azureml://x", provisioning_state=state) for name, state in states.items()
    ])


READY = endpoint(blue="Succeeded", green="Succeeded", red="Succeeded")


@pytest.mark.parametrize(("traffic", "mirror"), [
    ({"blue": 100}, {}),
    ({"blue": 90, "green": 10}, {}),
    ({"blue": 100, "green": 0}, {"green": 50}),
    ({"blue": 100}, {"green": 10, "red": 0}),
])
def test_a_valid_split_passes(traffic: dict, mirror: dict) -> None:
    check(READY, traffic, mirror)


@pytest.mark.parametrize(("traffic", "mirror", "status", "field", "words"), [
    ({"blue": 90}, {}, 400, "traffic", "sum to 100, got 90"),
    ({"blue": 0, "green": 0}, {}, 400, "traffic", "sum to 100, got 0"),
    ({"blue": 90, "purple": 10}, {}, 400, "traffic.purple", "not on endpoint 'credit-risk'"),
    ({"blue": 100}, {"purple": 10}, 400, "mirror_traffic.purple", "its deployments: blue, green, red"),
    ({"blue": 100}, {"green": 51}, 400, "mirror_traffic", "at most 50%"),
    ({"blue": 100}, {"green": 30, "red": 30}, 400, "mirror_traffic", "at most 50%"),
    ({"blue": 100}, {"green": 10, "red": 10}, 400, "mirror_traffic", "one deployment"),
    ({"blue": 90, "green": 10}, {"green": 10}, 400, "mirror_traffic.green", "live traffic"),
])
def test_a_split_against_the_rules_is_refused_naming_the_field(
    traffic: dict, mirror: dict, status: int, field: str, words: str
) -> None:
    with pytest.raises(ApiError) as caught:
        check(READY, traffic, mirror)
    assert (caught.value.status, caught.value.field) == (status, field)
    assert words in caught.value.message


def test_only_provisioned_deployments_take_traffic() -> None:
    pending = endpoint(blue="Succeeded", green="Creating", red="Failed")
    check(pending, {"blue": 100, "green": 0, "red": 0}, {})
    with pytest.raises(ApiError) as caught:
        check(pending, {"blue": 50, "green": 50}, {})
    assert (caught.value.status, caught.value.field) == (409, "traffic.green")
    with pytest.raises(ApiError) as caught:
        check(pending, {"blue": 100}, {"red": 10})
    assert (caught.value.status, caught.value.field) == (400, "mirror_traffic.red")


def test_an_endpoint_without_deployments_takes_an_empty_split_only() -> None:
    check(endpoint(), {}, {})
    with pytest.raises(ApiError):
        check(READY, {}, {})
