"""The local service's generic ARM behaviour, each against the public source it follows.

Sources (repository Azure/azure-sdk-assets, folder python/sdk/ml/azure-ai-ml/tests/recordings/):
- `model/e2etests/test_model.pyTestModeltest_models_get_latest_label.json`: label latest is a versions
  list with `$orderBy=createdtime desc&$top=1`; a missing model is 404 UserError / ModelNotFound;
- `model/e2etests/test_model.pyTestModeltest_crud_file.json`: versions lists with `listViewType=ActiveOnly`,
  systemData with real times and the caller as creator;
- `online_services/e2etests/test_online_endpoint.pyTestOnlineEndpointtest_online_endpoint_e2e.json`:
  the Azure-AsyncOperation status body;
- `batch_services/e2etests/test_batch_endpoint.pyTestBatchEndpointtest_batch_endpoint_create.json`:
  a missing endpoint's 404 and a long-running DELETE (202, Azure-AsyncOperation, Location).
Paging (`value` + `nextLink`) is ARM's list contract (REST spec: every list has `nextLink`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from devhost.entra import LocalEntraStack
from localaml.service import LocalAzureML
from localentra.directory import APP_CLIENT_ID
from tests.fidelity.replay import Client, load, shape_differences

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


@pytest.fixture
def client(fake: LocalAzureML, entra: LocalEntraStack) -> Client:
    """A person's token (alice, signed in to the local Entra ID), as a data scientist's SDK sends it."""
    return Client(fake, entra.token_for("alice", ["https://management.azure.com/.default"]))


def _put_version(client: Client, version: str, **properties: Any) -> dict[str, Any]:
    put = load("model_version_put").request
    body = {"properties": {**put["body"]["properties"], **properties}}
    answer = client.send("PUT", put["path"].replace("/versions/3", f"/versions/{version}"), put["query"], body)
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


def _versions(client: Client, **query: str) -> list[dict[str, Any]]:
    path = load("model_versions_latest").request["path"]
    answer = client.send("GET", path, {"api-version": "2023-08-01-preview", **query})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["value"])


def test_label_latest_is_the_most_recently_created_version(client: Client) -> None:
    """Recorded: `$orderBy=createdtime desc&$top=1` (test_models_get_latest_label.json); created, not numbered."""
    for version in ("1", "3", "2"):
        _put_version(client, version)

    latest = _versions(client, **{"$orderBy": "createdtime desc", "$top": "1"})
    oldest = _versions(client, **{"$orderBy": "createdtime asc"})

    assert [v["name"] for v in latest] == ["2"]
    assert [v["name"] for v in oldest] == ["1", "3", "2"]


def test_an_unknown_order_is_refused_as_azure_ml_refuses(client: Client) -> None:
    path = load("model_versions_latest").request["path"]
    _put_version(client, "1")

    answer = client.send("GET", path, {"api-version": "2023-08-01-preview", "$orderBy": "name desc"})

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "UserError"


def test_versions_lists_hold_active_versions_unless_asked(client: Client) -> None:
    """Recorded: the SDK lists with listViewType=ActiveOnly (test_crud_file.json); archived ones need asking."""
    _put_version(client, "1")
    _put_version(client, "2", isArchived=True)

    assert [v["name"] for v in _versions(client, listViewType="ActiveOnly")] == ["1"]
    assert [v["name"] for v in _versions(client)] == ["1"]
    assert [v["name"] for v in _versions(client, listViewType="ArchivedOnly")] == ["2"]
    assert sorted(v["name"] for v in _versions(client, listViewType="All")) == ["1", "2"]


def test_lists_are_paged_with_next_link(client: Client, fake: LocalAzureML) -> None:
    fake.page_size = 2
    for version in ("1", "2", "3", "4", "5"):
        _put_version(client, version)
    path = load("model_versions_latest").request["path"]

    answer = client.send("GET", path, {"api-version": "2023-08-01-preview", "$orderBy": "createdtime asc"}).json()
    names = [v["name"] for v in answer["value"]]
    pages = 1
    while "nextLink" in answer:
        answer = client.send("GET", answer["nextLink"].removeprefix(fake.base_url.rstrip("/"))).json()
        names += [v["name"] for v in answer["value"]]
        pages += 1

    assert (names, pages) == (["1", "2", "3", "4", "5"], 3)


def test_a_container_list_holds_containers_only(client: Client, fake: LocalAzureML) -> None:
    _put_version(client, "1")
    _put_version(client, "2")
    models = f"{fake.workspace_id('dev')}/models"

    answer = client.send("GET", models, {"api-version": "2023-08-01-preview"}).json()

    assert [(m["name"], m["type"]) for m in answer["value"]] == [
        ("test_907403507619", "Microsoft.MachineLearningServices/workspaces/models")
    ]


def test_system_data_says_who_made_it_and_when(client: Client, fake: LocalAzureML) -> None:
    """Real times and the token's identity (its upn), creation kept on update (test_crud_file.json's shape)."""
    before = datetime.now(UTC) - timedelta(seconds=1)
    made = _put_version(client, "1")["systemData"]
    changed = _put_version(client, "1", description="changed")["systemData"]

    assert datetime.fromisoformat(made["createdAt"]) >= before
    assert (made["createdBy"], made["createdByType"]) == ("alice@contoso.test", "User")
    assert changed["createdAt"] == made["createdAt"]
    assert changed["lastModifiedAt"] > made["lastModifiedAt"]
    assert (changed["lastModifiedBy"], changed["lastModifiedByType"]) == ("alice@contoso.test", "User")


def test_an_application_token_makes_resources_as_an_application(
    fake: LocalAzureML, credential: TokenCredential
) -> None:
    """The app's own token (client credentials: `appid`, `idtyp` app, no `upn`)."""
    made = _put_version(Client(fake, credential.get_token("https://management.azure.com/.default").token), "1")

    assert (made["systemData"]["createdBy"], made["systemData"]["createdByType"]) == (APP_CLIENT_ID, "Application")

    for refused in ("not-a-token", credential.get_token("https://storage.azure.com/.default").token):
        models = f"{fake.workspace_id('dev')}/models"
        answer = Client(fake, refused).send("GET", models, {"api-version": "2023-08-01-preview"})
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_requests_are_recorded_as_sent(client: Client, fake: LocalAzureML) -> None:
    put = load("online_endpoint_put").request

    client.send(put["method"], put["path"], put["query"], put["body"])

    [recorded] = fake.requests_to("PUT", r"/onlineEndpoints/")
    assert recorded.body == put["body"]


def test_a_missing_model_version_is_azure_mls_user_error(client: Client) -> None:
    """The envelope recorded for a missing model (UserError, nested reason, additionalInfo)."""
    _put_version(client, "1")
    path = load("model_version_get").request["path"].replace("/versions/3", "/versions/9")

    answer = client.send("GET", path, {"api-version": "2023-08-01-preview"})

    assert answer.status_code == 404
    recorded = load("model_versions_missing_container").response["body"]
    assert shape_differences(recorded, answer.json()) == []
    assert answer.json()["error"]["message"] == "The specified resource was not found."


def test_a_missing_job_is_azure_mls_user_error(client: Client, fake: LocalAzureML) -> None:
    answer = client.send("GET", f"{fake.workspace_id('dev')}/jobs/nope", {"api-version": "2024-04-01"})

    assert answer.status_code == 404
    assert shape_differences(load("model_versions_missing_container").response["body"], answer.json()) == []


def test_a_missing_workspace_is_arms_resource_not_found(client: Client, fake: LocalAzureML) -> None:
    """ARM itself answers for top-level resources (docs: "Resolve resource not found errors")."""
    answer = client.send("GET", fake.workspace_id("nope"), {"api-version": "2024-10-01-preview"}, rewrite=False)

    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["code"] == "ResourceNotFound"
    assert "'Microsoft.MachineLearningServices/workspaces/nope' under resource group" in error["message"]


def test_an_operation_reports_its_progress(client: Client, fake: LocalAzureML) -> None:
    """Status body as recorded: InProgress states with endTime 0001-01-01, then the end state and time."""
    operation = fake.start_operation(fake.workspace_id("dev") + "/onlineEndpoints/ep", status="Updating")
    path = "/" + fake.operation_url(operation.id).removeprefix(fake.base_url).split("?")[0]

    running = client.send("GET", path).json()
    operation.status, operation.end = "Succeeded", "2026-01-01T00:00:00+00:00"
    done = client.send("GET", path).json()

    recorded = load("operation_status").response["body"]
    assert shape_differences(recorded, running) == shape_differences(recorded, done) == []
    assert (running["status"], running["endTime"]) == ("Updating", "0001-01-01T00:00:00+00:00")
    assert (done["status"], done["endTime"]) == ("Succeeded", "2026-01-01T00:00:00+00:00")


def test_a_location_poll_is_202_until_the_operation_ends(client: Client, fake: LocalAzureML) -> None:
    operation = fake.start_operation(fake.workspace_id("dev") + "/onlineEndpoints/ep", status="Deleting")
    path = "/" + fake.operation_url(operation.id).removeprefix(fake.base_url).split("?")[0]
    result = path.replace("/mfeOperationsStatus/", "/mfeOperationResults/")

    running = client.send("GET", result)
    operation.status, operation.end = "Succeeded", "2026-01-01T00:00:00+00:00"
    done = client.send("GET", result)

    assert (running.status_code, "Location" in running.headers) == (202, True)
    assert done.status_code == 204


def test_deleting_what_is_not_there_is_204(client: Client, fake: LocalAzureML) -> None:
    """REST spec example OnlineDeployment/delete.json lists 204 (nothing to delete)."""
    path = f"{fake.workspace_id('dev')}/onlineEndpoints/ep/deployments/gone"

    assert client.send("DELETE", path, {"api-version": "2023-04-01"}).status_code == 204


def test_the_shape_comparison_finds_missing_fields_and_other_types() -> None:
    recorded = {"a": {"b": 1, "c": [{"d": "x"}]}, "tags": {"k": "v"}, "n": None}

    assert shape_differences(recorded, {"a": {"b": 2.5, "c": [{"d": "y"}]}, "tags": {}, "n": 3}) == []
    assert shape_differences(recorded, {"a": {"b": "1", "c": []}, "tags": {}}) == [
        "body.a.b: '1' is not a number", "body.a.c: nothing like recorded item 0: body.a.c: empty", "body.n: missing",
    ]
