"""The Azure ML adapter from many threads at once, as the Functions host calls it: every call arrives in its scope.

azure-ai-ml's `models.share` switches its client's operation scope (all operation kinds' one `OperationScope`)
to the registry's subscription and resource group while it runs (`ModelOperations._set_registry_client`,
azure-ai-ml 1.35.2). The app keeps one client per location for all threads; on a shared client, a share
sends the other threads' calls to the registry's resource group (`workspaces/dev` "under resource group
'rg-registry' was not found"), asks the registry for workspace models, looks a job's compute up in the
wrong place, or leaves the client in the registry's scope for good. Here promotions, reads, job
submissions and traffic changes run together through the app's real adapter, each naming the resources
it targets; the local service records where every request arrived (`Recorded.scope`), and each request
naming a call's resource must have arrived in that resource's scope, with no call failing.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import pytest

from localaml.service import REGISTRY_RESOURCE_GROUP, RESOURCE_GROUP, SUBSCRIPTION, LocalAzureML
from shared.adapters.azureml import AzureMLPlatform
from shared.domain.ports import ModelVersion
from tests.contract.test_azureml_models_jobs import seed_pipeline_assets

DEV = LocalAzureML.workspace_id("dev")
REGISTRY = "registry:mlops-registry"
DEV_SCOPE = f"{SUBSCRIPTION}/{RESOURCE_GROUP}/workspaces/dev"
REGISTRY_SCOPE = f"{SUBSCRIPTION}/{REGISTRY_RESOURCE_GROUP}/registries/mlops-registry"
DISCOVERY_SCOPE = "registries/mlops-registry"
# The scopes of this test's resources, by the prefix of their names: promoted models live in the registry
# (their source in dev is named only in the import's body), everything else in the workspace dev.
HOME = {"promo": {REGISTRY_SCOPE}, "readmodel": {DEV_SCOPE}, "readjob": {DEV_SCOPE}, "submit": {DEV_SCOPE},
        "readep": {DEV_SCOPE}, "traffic": {DEV_SCOPE}}
NAMED = re.compile(r"(?<![A-Za-z0-9_-])(?P<kind>" + "|".join(HOME) + r")-\d+(?![A-Za-z0-9_-])")
PER_KIND = 6  # calls of each kind per round
THREADS = 16
ROUNDS = 2


@dataclass
class Call:
    name: str  # the resource the call targets, named in the paths of its requests
    run: Callable[[AzureMLPlatform], object]
    error: BaseException | None = None


def _promote(n: int, platform: AzureMLPlatform) -> object:
    source = ModelVersion(location="dev", name=f"promo-{n}", version="1")
    return platform.promote_model(source, REGISTRY, {"mlops.source": "dev"})


def _read_model(n: int, platform: AzureMLPlatform) -> object:
    return platform.get_model("dev", f"readmodel-{n}", "1")


def _read_job(n: int, platform: AzureMLPlatform) -> object:
    return platform.get_job("dev", f"readjob-{n}")


def _read_endpoint(n: int, platform: AzureMLPlatform) -> object:
    return platform.get_endpoint("dev", f"readep-{n}")


def _submit(n: int, platform: AzureMLPlatform) -> object:
    model = f"azureml:readmodel-{n}:1"
    return platform.submit_job("dev", f"submit-{n}", "model-test", {"model": model}, {"mlops.model": model})


def _traffic(n: int, platform: AzureMLPlatform) -> object:
    platform.set_traffic("dev", f"traffic-{n}", {"blue": 90, "green": 10}, {})
    return None


CALLS = {"promo": _promote, "readmodel": _read_model, "readjob": _read_job, "readep": _read_endpoint,
         "submit": _submit, "traffic": _traffic}


def _seed(fake: LocalAzureML, round_: int) -> list[Call]:
    """Resources for one round of calls, and the calls, each on resources of its own."""
    seed_pipeline_assets(fake)
    calls = []
    for n in range(round_ * PER_KIND, (round_ + 1) * PER_KIND):
        fake.add_model(DEV, f"promo-{n}", "1", {"stage": "tested"})
        fake.add_model(DEV, f"readmodel-{n}", "1")
        fake.add(f"{DEV}/jobs/readjob-{n}", {"jobType": "Pipeline", "status": "Running",
                                             "experimentName": "model-test", "tags": {}, "properties": {}})
        for endpoint in (f"readep-{n}", f"traffic-{n}"):
            fake.add_online_endpoint("dev", endpoint, {"blue": 100}, {})
            for deployment in ("blue", "green"):
                fake.add_online_deployment("dev", endpoint, deployment, f"{DEV}/models/readmodel-{n}/versions/1")
        calls += [Call(f"{kind}-{n}", partial(run, n)) for kind, run in CALLS.items()]
    return calls


def _run_together(calls: list[Call], platform: AzureMLPlatform) -> None:
    """All calls from THREADS threads, released at once."""
    start = threading.Event()

    def run(call: Call) -> None:
        start.wait(timeout=30)
        try:
            call.run(platform)
        except Exception as error:  # what the test reports: any failure of a call on resources that exist
            call.error = error

    with ThreadPoolExecutor(THREADS) as pool:
        done = [pool.submit(run, call) for call in calls]
        start.set()
        for future in done:
            future.result()


def _misplaced(fake: LocalAzureML) -> list[str]:
    """Requests that arrived in another scope than that of the resource they name, or in no scope of this test."""
    wrong = []
    for request in list(fake.requests):
        scope = request.scope
        if scope is not None and scope not in (DEV_SCOPE, REGISTRY_SCOPE, DISCOVERY_SCOPE):
            wrong.append(f"{request.method} {request.path}: in {scope}, no scope of this test")
            continue
        for match in NAMED.finditer(request.path):
            if scope not in HOME[match["kind"]]:
                wrong.append(f"{request.method} {request.path}: {match[0]} asked in {scope}, it is in "
                             f"{' or '.join(sorted(HOME[match['kind']]))}")
    return wrong


@pytest.mark.parametrize("attempt", range(3))
def test_shares_reads_submissions_and_traffic_from_many_threads_each_arrive_in_their_own_scope(
    platform: AzureMLPlatform, fake: LocalAzureML, attempt: int
) -> None:
    rounds = [_seed(fake, round_) for round_ in range(ROUNDS)]
    shuffled = random.Random(attempt)

    for calls in rounds:
        shuffled.shuffle(calls)
        _run_together(calls, platform)

    failed = [f"{call.name}: {type(call.error).__name__}: {call.error}" for calls in rounds for call in calls
              if call.error is not None]
    misplaced = _misplaced(fake)
    named = {match["kind"] for request in fake.requests for match in NAMED.finditer(request.path)}
    assert named == set(HOME), "every kind of call is seen in the paths of its requests"
    assert not failed and not misplaced, "\n".join(["calls that failed:", *failed, "requests misplaced:", *misplaced])
    for n in range(ROUNDS * PER_KIND):
        promoted = platform.get_model(REGISTRY, f"promo-{n}", "1")
        assert promoted.tags.get("mlops.source") == "dev"
        assert fake.resources[f"{DEV}/jobs/submit-{n}".lower()]["properties"]["experimentName"] == "model-test"
        traffic = fake.resources[f"{DEV}/onlineEndpoints/traffic-{n}".lower()]["properties"]["traffic"]
        assert traffic == {"blue": 90, "green": 10}


def test_a_share_runs_on_a_client_of_its_own_and_the_cached_one_stays_in_the_workspace(
    platform: AzureMLPlatform, fake: LocalAzureML
) -> None:
    """Deterministic: the share's scope switch happens on a client no other call uses."""
    fake.add_model(DEV, "promo-0", "1")
    fake.add_model(DEV, "readmodel-0", "1")
    cached = platform._clients.ml("dev")
    shared_on: list[object] = []
    share = type(cached.models).share

    def watched(self: object, *args: object, **kwargs: object) -> object:
        shared_on.append(self)
        return share(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(cached.models), "share", watched)
        platform.promote_model(ModelVersion(location="dev", name="promo-0", version="1"), REGISTRY)

    assert len(shared_on) == 1 and shared_on[0] is not cached.models, "the share ran on the cached client"
    scope = cached.models._operation_scope
    assert (scope.resource_group_name, scope.registry_name) == (RESOURCE_GROUP, None)
    assert platform._clients.ml("dev") is cached
    assert platform.get_model("dev", "readmodel-0", "1").name == "readmodel-0"
