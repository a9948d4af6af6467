"""The Bicep under infra/ provisions what the app needs, checked offline.

Bicep cannot be compiled here (its CLI downloads a binary), so these tests read the
templates with pycep (see bicep.py) and hold them against the code: the settings model,
the functions that function_app.py registers, the Azure ML event types, and the role
table in infra/README.md. tools/check_infra.sh scans the same files with checkov.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.domain.events import AML_EVENT_TYPES
from shared.settings import Settings
from tests.infra.bicep import INFRA, expr, module, resource, resources, role_names, template, templates, variable

ROOT = INFRA.parent

# Settings the code reads that the Bicep deliberately leaves unset, and why.
NOT_SET_IN_AZURE = {
    "AzureWebJobsStorage": "the connection-string form: shared keys are off, so the host and the app use "
    "the identity-based AzureWebJobsStorage__* settings instead",
    **{
        f"MLOPS_AZUREML_{name}": "local Azure ML service only; in Azure the adapter talks to Azure's endpoints"
        for name in ("ENDPOINT", "STORAGE_SUFFIX")
    },
    **{
        name: "local runs only (the local Entra ID's service principal); in Azure the app is its managed identity"
        for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_AUTHORITY_HOST")
    },
    **{
        f"MLOPS_SCORING_{knob}": "a batch-scoring tuning knob: the code's default applies unless an operator sets it"
        for knob in ("RANGE_BYTES", "CHUNK_BYTES", "BLOCK_BYTES", "BATCH_ROWS", "MAX_ERROR_SHARE", "THREADS",
                     "MODEL_CACHE", "HANDOFF_BYTES", "BATCH_ENDPOINT")
    },
}

# Flex Consumption sets these itself and rejects apps that set them.
FLEX_MANAGED_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
}

SETTING_REFERENCE = re.compile(r"%([A-Za-z0-9_]+)%")
ROLES_TABLE = re.compile(r"<!-- roles:start -->(.*?)<!-- roles:end -->", re.DOTALL)


@pytest.fixture(scope="module")
def functions() -> dict[str, list[dict[str, Any]]]:
    """The bindings of every function, as the Functions worker indexes function_app.py.

    In a child process because `get_functions()` may run once per app object.
    """
    script = (
        "import json, function_app\n"
        "print(json.dumps({f.get_function_name(): [b.get_dict_repr() for b in f.get_bindings()]"
        " for f in function_app.app.get_functions()}, default=str))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"function_app.py cannot be indexed:\n{done.stderr}"
    return json.loads(done.stdout.splitlines()[-1])


def trigger(functions: dict[str, list[dict[str, Any]]], name: str) -> dict[str, Any]:
    assert name in functions, f"function_app.py registers no function {name!r}; it has {sorted(functions)}"
    return next(binding for binding in functions[name] if binding["type"].endswith("Trigger"))


def binding_values(functions: dict[str, list[dict[str, Any]]], key: str) -> set[str]:
    """Every value of one binding property (`connection`, `queueName`) across the functions."""
    return {binding[key] for bindings in functions.values() for binding in bindings if key in binding}


def app_settings() -> dict[str, Any]:
    """The app settings main.bicep gives the function app, by name."""
    return {entry["name"]: entry["value"] for entry in variable("main.bicep", "appSettings")}


def roles_json() -> dict[str, str]:
    return json.loads((INFRA / "roles.json").read_text())


# Templates ----------------------------------------------------------------------------


def test_every_module_a_template_uses_exists() -> None:
    for name, parsed in templates().items():
        for symbol, declaration in parsed.get("modules", {}).items():
            path = (INFRA / name).parent / declaration["detail"]["path"]
            assert path.is_file(), f"{name}: module {symbol} points at missing {path}"


# The function app -----------------------------------------------------------------------


def test_the_app_runs_python_311_on_flex_consumption_as_a_user_assigned_identity() -> None:
    plan = resource("modules/app.bicep", "plan")
    site = resource("modules/app.bicep", "app")
    config = site["properties"]["functionAppConfig"]
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"]["type"] == "blobContainer"
    assert config["deployment"]["storage"]["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }
    assert site["properties"]["keyVaultReferenceIdentity"] == "identityId"
    assert expr(module("main.bicep", "app")["params"]["identityId"]) == "appIdentity.id"


def test_no_resource_accepts_keys_or_anonymous_access() -> None:
    accounts = list(resources("Microsoft.Storage/storageAccounts"))
    assert accounts
    for file, symbol, account in accounts:
        assert account["properties"]["allowSharedKeyAccess"] is False, f"{file}: {symbol} allows shared keys"
        assert account["properties"]["allowBlobPublicAccess"] is False, f"{file}: {symbol} allows public blobs"
    for _, _, topic in resources("Microsoft.EventGrid/topics"):
        assert topic["properties"]["disableLocalAuth"] is True
    for _, _, insights in resources("Microsoft.Insights/components"):
        assert insights["properties"]["DisableLocalAuth"] is True
    for _, _, vault in resources("Microsoft.KeyVault/vaults"):
        assert vault["properties"]["enableRbacAuthorization"] is True


def test_the_host_storage_connection_is_identity_based() -> None:
    settings = app_settings()
    assert "AzureWebJobsStorage" not in settings
    assert expr(settings["AzureWebJobsStorage__blobServiceUri"]) == "storage.outputs.blobEndpoint"
    assert expr(settings["AzureWebJobsStorage__queueServiceUri"]) == "storage.outputs.queueEndpoint"
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert expr(settings["AzureWebJobsStorage__clientId"]) == "appIdentity.properties.clientId"
    assert expr(settings["AZURE_CLIENT_ID"]) == "appIdentity.properties.clientId"


# Settings -----------------------------------------------------------------------------


def settings_read(functions: dict[str, list[dict[str, Any]]]) -> set[str]:
    """The settings model's names, and the `%NAME%` settings the bindings resolve."""
    in_bindings = {name for bindings in functions.values() for name in SETTING_REFERENCE.findall(json.dumps(bindings))}
    return set(Settings.names()) | in_bindings


def test_every_setting_the_code_reads_is_set_or_explained(functions: dict[str, list[dict[str, Any]]]) -> None:
    provided = set(app_settings()) | set(variable("main.bicep", "secretSettingNames"))
    unexplained = settings_read(functions) - provided - set(NOT_SET_IN_AZURE)
    assert not unexplained, f"read by the code but neither set by infra/main.bicep nor explained: {unexplained}"


def test_explained_and_provided_settings_are_ones_the_code_reads(functions: dict[str, list[dict[str, Any]]]) -> None:
    read = settings_read(functions)
    set_by_bicep = set(app_settings())
    assert set(NOT_SET_IN_AZURE) <= read, "NOT_SET_IN_AZURE names a setting the code no longer reads"
    assert not set(NOT_SET_IN_AZURE) & set_by_bicep
    assert set(variable("main.bicep", "secretSettingNames")) <= read
    # A typo in a setting name would silently leave the real one unset.
    unread = {name for name in set_by_bicep if name.startswith("MLOPS_")} - read
    assert not unread, f"set by infra/main.bicep, read by no code: {unread}"


def test_secrets_are_key_vault_references() -> None:
    secret_settings = template("main.bicep")["variables"]["secretSettings"]["value"]
    assert secret_settings["loop_type"]["detail"]["array_name"]["function"]["parameters"]["arg_1"] == (
        "secretSettingNames"
    )
    assert secret_settings["config"]["value"].startswith("@Microsoft.KeyVault(VaultName=${names.vault};")
    assert module("main.bicep", "app")["params"]["appSettings"]["function"] == {
        "type": "concat",
        "parameters": {"arg_1": "appSettings", "arg_2": "secretSettings"},
    }


def test_settings_flex_consumption_manages_itself_are_not_set() -> None:
    assert not FLEX_MANAGED_SETTINGS & set(app_settings())


def test_the_policy_path_defaults_to_the_apps_own() -> None:
    assert app_settings()["MLOPS_POLICY_PATH"] == "policyPath"
    assert template("main.bicep")["parameters"]["policyPath"]["default"] == Settings.model_fields["policy_path"].default


def test_every_trigger_connection_is_identity_based(functions: dict[str, list[dict[str, Any]]]) -> None:
    for connection in binding_values(functions, "connection"):
        assert f"{connection}__blobServiceUri" in app_settings(), f"connection {connection} has no identity-based URI"


def test_every_queue_a_function_listens_to_is_declared(functions: dict[str, list[dict[str, Any]]]) -> None:
    """A `%SETTING%` queue name is the queue that main.bicep sets the app setting to."""
    variables = template("main.bicep")["variables"]

    def value(node: Any) -> Any:
        return variable("main.bicep", node) if isinstance(node, str) and node in variables else node

    declared = {value(name) for name in variable("main.bicep", "queueNames")}
    for name in binding_values(functions, "queueName"):
        setting = SETTING_REFERENCE.fullmatch(name)
        queue = value(app_settings()[setting[1]]) if setting else name
        assert queue in declared, f"{name} ({queue}) is not among the queues main.bicep declares: {declared}"


# Event Grid ---------------------------------------------------------------------------


def test_each_workspace_gets_a_subscription_per_aml_event_type_to_aml_events(
    functions: dict[str, list[dict[str, Any]]],
) -> None:
    event_types = [delivery["eventType"] for delivery in variable("modules/aml-events.bicep", "deliveries")]
    assert set(event_types) == set(AML_EVENT_TYPES)
    names = [delivery["name"] for delivery in variable("modules/aml-events.bicep", "deliveries")]
    assert len(names) == len(set(names)), "each subscription needs its own name"

    subscriptions = template("modules/aml-events.bicep")["resources"]["subscriptions"]["config"]
    assert subscriptions["loop_type"]["detail"]["item_name"] == "delivery"
    assert subscriptions["loop_type"]["detail"]["array_name"]["operator"]["operands"]["true_value"] == "deliveries"
    properties = subscriptions["config"]["properties"]
    assert [expr(event_type) for event_type in properties["filter"]["includedEventTypes"]] == ["delivery.eventType"]
    assert expr(properties["filter"]["advancedFilters"]) == "delivery.advancedFilters"
    assert properties["destination"]["endpointType"] == "AzureFunction"
    assert properties["destination"]["properties"]["resourceId"] == "functionId"

    wiring = template("main.bicep")["modules"]["amlEvents"]["config"]
    assert wiring["loop_type"]["detail"]["array_name"] == "watched"
    assert wiring["config"]["params"]["functionId"] == "${app.outputs.id}/functions/aml_events"
    assert trigger(functions, "aml_events")["type"] == "eventGridTrigger"


def test_a_model_name_prefix_filters_only_model_registered() -> None:
    filtered = {
        delivery["eventType"]: delivery["subjectBeginsWith"]
        for delivery in variable("modules/aml-events.bicep", "deliveries")
        if delivery["subjectBeginsWith"] != ""
    }
    assert list(filtered) == ["Microsoft.MachineLearningServices.ModelRegistered"]
    prefix = filtered["Microsoft.MachineLearningServices.ModelRegistered"]["operator"]["operands"]
    assert (prefix["true_value"], prefix["false_value"]) == ("", "models/${modelNamePrefix}")


def _advanced_filters(delivery: dict[str, Any]) -> list[dict[str, Any]]:
    filters = delivery["advancedFilters"]
    return variable("modules/aml-events.bicep", filters) if isinstance(filters, str) else filters


def test_run_status_changed_reaches_the_app_only_for_failed_or_canceled_runs_and_monitor_breaches() -> None:
    """The breach filter is the one the docs give (MicrosoftDocs/azure-ai-docs,
    articles/machine-learning/how-to-monitor-model-performance.md); two subscriptions, since the advanced
    filters of one are ANDed (MicrosoftDocs/azure-docs, articles/event-grid/event-filtering.md)."""
    deliveries = variable("modules/aml-events.bicep", "deliveries")
    run_status = {d["name"]: _advanced_filters(d) for d in deliveries
                  if d["eventType"] == "Microsoft.MachineLearningServices.RunStatusChanged"}
    assert run_status == {
        "run-status-changed": [{"operatorType": "StringIn", "key": "data.RunStatus", "values": ["Failed", "Canceled"]}],
        "model-monitor-breached": [{
            "operatorType": "StringContains", "key": "data.RunTags.azureml_modelmonitor_threshold_breached",
            "values": ["has failed due to one or more features violating metric thresholds"],
        }],
    }
    others = [_advanced_filters(d) for d in deliveries
              if d["eventType"] != "Microsoft.MachineLearningServices.RunStatusChanged"]
    assert others and all(filters == [] for filters in others)


def test_the_breach_filter_matches_the_tag_the_app_reads() -> None:
    from shared.domain.events import BREACH_TAG, BREACH_TEXT

    [breach] = [d for d in variable("modules/aml-events.bicep", "deliveries") if d["name"] == "model-monitor-breached"]
    [condition] = _advanced_filters(breach)
    assert condition["key"].lower() == f"data.runtags.{BREACH_TAG}" and condition["values"] == [BREACH_TEXT]


def test_new_scoring_input_blobs_reach_score_blob_through_the_blob_extension(
    functions: dict[str, list[dict[str, Any]]],
) -> None:
    score_blob = trigger(functions, "score_blob")
    container = variable("main.bicep", "containers")["scoringInput"]
    assert score_blob["type"] == "blobTrigger"
    assert score_blob["source"] == "EventGrid"
    assert score_blob["path"] == "%MLOPS_SCORING_INPUT_CONTAINER%/{name}"
    assert expr(app_settings()["MLOPS_SCORING_INPUT_CONTAINER"]) == "containers.scoringInput"
    assert container == Settings.model_fields["scoring"].default_factory().input_container
    assert expr(module("main.bicep", "blobEvents")["params"]["scoringInputContainerName"]) == "containers.scoringInput"

    events = "modules/blob-events.bicep"
    assert variable(events, "functionName") == "score_blob"
    webhook_path = "/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}"
    assert variable(events, "webhookBase").endswith(webhook_path)
    key = variable(events, "blobsExtensionKey")["operator"]["operands"]
    assert key["condition"] == "subscribe"
    assert key["true_value"]["operator"]["operands"]["operand_1"]["function"]["parameters"] == {
        "func_name": "listKeys",
        "resource_identifier": "hostKeysId",
        "api_version": "2024-04-01",
    }
    assert expr(key["true_value"]["operator"]["operands"]["operand_2"]) == "systemKeys.blobs_extension"
    wiring = module(events, "subscription")["params"]
    assert wiring["endpointUrl"] == "${webhookBase}&code=${blobsExtensionKey}"
    assert wiring["subjectBeginsWith"] == "/blobServices/default/containers/${scoringInputContainerName}/"

    webhook = resource("modules/blob-subscription.bicep", "subscription")["properties"]
    assert webhook["destination"]["endpointType"] == "WebHook"
    assert webhook["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]


def test_every_event_subscription_retries_then_dead_letters_with_an_identity() -> None:
    subscriptions = list(resources("Microsoft.EventGrid/systemTopics/eventSubscriptions"))
    assert {file for file, _, _ in subscriptions} == {"modules/aml-events.bicep", "modules/blob-subscription.bicep"}
    for file, symbol, subscription in subscriptions:
        properties = subscription["properties"]
        where = f"{file}: {symbol}"
        assert properties["retryPolicy"]["maxDeliveryAttempts"] >= 1, where
        assert properties["retryPolicy"]["eventTimeToLiveInMinutes"] >= 60, where
        assert "deadLetterDestination" not in properties, f"{where} dead-letters with a key, not an identity"
        dead_letters = properties["deadLetterWithResourceIdentity"]
        assert dead_letters["identity"]["type"] == "UserAssigned", where
        assert dead_letters["identity"]["userAssignedIdentity"] == "eventGridIdentityId", where
        assert dead_letters["deadLetterDestination"]["endpointType"] == "StorageBlob", where
        assert dead_letters["deadLetterDestination"]["properties"]["blobContainerName"] == "deadLetterContainerName"


def test_event_grid_may_write_dead_letters_and_nothing_else() -> None:
    topics = list(resources("Microsoft.EventGrid/systemTopics"))
    assert len(topics) == 2
    for _, _, topic in topics:
        assert list(topic["identity"]["userAssignedIdentities"]) == ["'${eventGridIdentityId}'"]
    grants = [
        (symbol, role_names(assignment), assignment["scope"])
        for _, symbol, assignment in resources("Microsoft.Authorization/roleAssignments")
        if assignment["properties"]["principalId"] == "eventGridPrincipalId"
    ]
    assert grants == [("eventGridDeadLetterWriter", {"Storage Blob Data Contributor"}, "deadLetters")]


def test_the_apps_own_events_go_to_its_custom_topic() -> None:
    assert expr(app_settings()["MLOPS_NOTIFY_EVENTGRID_ENDPOINT"]) == "topic.outputs.endpoint"
    outputs = template("main.bicep")["outputs"]
    assert {"AZURE_FUNCTION_APP_NAME", "MLOPS_NOTIFY_EVENTGRID_ENDPOINT"} <= set(outputs)
    assert resource("modules/topic.bicep", "topic")["properties"]["inputSchema"] == "CloudEventSchemaV1_0"


# Roles ----------------------------------------------------------------------------------


def readme_roles() -> dict[str, str]:
    """Role name → role definition id, from the table between the roles markers."""
    table = ROLES_TABLE.search((INFRA / "README.md").read_text())
    assert table, "infra/README.md has no <!-- roles:start --> … <!-- roles:end --> table"
    rows = [line.strip().strip("|").split("|") for line in table.group(1).strip().splitlines()[2:]]
    return {cells[0].strip(): cells[1].strip().strip("`") for cells in rows}


def test_every_role_assignment_names_one_role_from_the_role_table() -> None:
    assignments = list(resources("Microsoft.Authorization/roleAssignments"))
    assert assignments
    for file, symbol, assignment in assignments:
        names = role_names(assignment["properties"]["roleDefinitionId"])
        assert len(names) == 1 and names <= set(roles_json()), f"{file}: {symbol} does not use infra/roles.json"


def test_the_readme_role_table_is_exactly_the_roles_assigned() -> None:
    assignments = resources("Microsoft.Authorization/roleAssignments")
    assigned = set().union(*(role_names(assignment["properties"]) for _, _, assignment in assignments))
    documented = readme_roles()
    assert set(documented) == assigned
    assert set(roles_json()) == assigned, "infra/roles.json lists a role nothing assigns"
    assert {name: roles_json()[name] for name in documented} == documented, "README ids differ from infra/roles.json"


# Sign-in: the Entra ID app registrations -----------------------------------------------

IDENTITY = "modules/identity.bicep"
GRAPH_EXTENSION = re.compile(r"br:mcr\.microsoft\.com/bicep/extensions/microsoftgraph/v1\.0:\d+\.\d+\.\d+")
APP_ROLES = {
    # value: who may hold it, and words its description must name (what the holder may do)
    "MLOps.Reader": (["User", "Application"], ["GET", "control room"]),
    "MLOps.Operator": (["User", "Application"],
                       ["pause", "resume", "approve", "promote", "abort", "undo", "traffic", "replay", "retrain"]),
    "MLOps.Approver": (["User"], ["review", "approve", "reject"]),
    "MLOps.Admin": (["User"], ["policy", "promote a rollout in full", "force a model promotion"]),
}


def bicepconfig() -> dict[str, Any]:
    """infra/bicepconfig.json; Bicep allows `//` comments in it, JSON does not."""
    text = (INFRA / "bicepconfig.json").read_text()
    return json.loads("\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//")))


def owners(body: dict[str, Any]) -> list[str]:
    return [expr(owner) for owner in body["owners"]["relationships"]]


def test_the_graph_extension_is_pinned_and_declared_where_graph_resources_are() -> None:
    assert GRAPH_EXTENSION.fullmatch(bicepconfig()["extensions"]["microsoftGraphV1"]), "pin a released v1.0 version"
    graph = {
        (name, declaration["api_version"])
        for name, parsed in templates().items()
        for declaration in parsed.get("resources", {}).values()
        if declaration["type"].startswith("Microsoft.Graph/")
    }
    assert graph == {(IDENTITY, "v1.0")}
    assert "microsoftGraphV1" in template(IDENTITY).get("extensions", {})
    assert expr(module("main.bicep", "identity")["params"]["uniqueName"]) == "names.apiApp"


def test_the_api_registration_has_the_four_app_roles() -> None:
    api = resource(IDENTITY, "api")
    assert api["appRoles"] == "appRoles"
    roles = {role["value"]: role for role in variable(IDENTITY, "appRoles")}
    assert set(roles) == set(APP_ROLES)
    for value, (members, words) in APP_ROLES.items():
        role = roles[value]
        assert role["allowedMemberTypes"] == members, value
        assert role["isEnabled"] is True, value
        # A stable id: the same role keeps its assignments over redeployments.
        assert expr(role["id"]) == f"guid(uniqueName, {value})", value
        missing = [word for word in words if word.lower() not in role["description"].lower()]
        assert not missing, f"{value}: the description does not say {missing}"


def test_the_api_takes_v2_tokens_with_upn_and_exposes_user_impersonation() -> None:
    api = resource(IDENTITY, "api")
    assert api["api"]["requestedAccessTokenVersion"] == 2
    assert api["optionalClaims"] == {"accessToken": [{"name": "upn"}]}
    [scope] = api["api"]["oauth2PermissionScopes"]
    assert (scope["id"], scope["value"], scope["type"], scope["isEnabled"]) == ("scopeId", "scopeValue", "User", True)
    assert variable(IDENTITY, "scopeValue") == "user_impersonation"
    assert expr(variable(IDENTITY, "scopeId")) == "guid(uniqueName, scopeValue)"
    # `api://<client id>`: the client id comes from the first declaration of the same registration.
    assert api["identifierUris"] == ["api://${apiApp.appId}"]
    first = resource(IDENTITY, "apiApp")
    assert first["uniqueName"] == api["uniqueName"] == "uniqueName"
    # Graph updates with PATCH: the first declaration must not set what the second one does.
    assert set(first) == {"uniqueName", "displayName", "signInAudience"}
    for _, symbol, app in resources("Microsoft.Graph/applications"):
        assert app["signInAudience"] == "AzureADMyOrg", symbol
        assert not {"passwordCredentials", "keyCredentials", "web"} & set(app), f"{symbol} has a secret or web flow"


def test_the_control_room_signs_in_to_the_api_as_a_single_page_app(
    functions: dict[str, list[dict[str, Any]]],
) -> None:
    api = resource(IDENTITY, "api")
    assert api["spa"] == {"redirectUris": ["controlRoomUrl"]}
    assert module("main.bicep", "identity")["params"]["controlRoomUrl"] == "controlRoomUrl"
    route = trigger(functions, "ops_controlroom")["route"]
    assert variable("main.bicep", "controlRoomUrl") == f"https://${{names.app}}.azurewebsites.net/api/{route}"
    assert route == "ops/controlroom"
    # The host name is predicted from the app's name: true while the app asks for no unique default
    # host name and the host keeps the `api` route prefix.
    assert expr(module("main.bicep", "app")["params"]["appName"]) == "names.app"
    assert "autoGeneratedDomainNameLabelScope" not in resource("modules/app.bicep", "app")["properties"]
    host = json.loads((ROOT / "host.json").read_text())
    assert host.get("extensions", {}).get("http", {}).get("routePrefix", "api") == "api"
    # The control room's own scope and the sign-in scopes, so that one admin consent covers them.
    assert expr(api["requiredResourceAccess"][0]["resourceAppId"]) == "apiApp.appId"
    assert api["requiredResourceAccess"][0]["resourceAccess"] == [{"id": "scopeId", "type": "Scope"}]
    assert api["requiredResourceAccess"][1] == "signInAccess"


def test_opsctl_is_a_public_client_pre_authorized_for_the_api() -> None:
    opsctl = resource(IDENTITY, "opsctl")
    assert opsctl["isFallbackPublicClient"] is True
    assert opsctl["publicClient"] == {"redirectUris": ["http://localhost"]}
    assert "spa" not in opsctl
    assert opsctl["uniqueName"] == "opsctlUniqueName"
    assert variable(IDENTITY, "opsctlUniqueName") == "${uniqueName}-opsctl"
    [to_api, sign_in] = opsctl["requiredResourceAccess"]
    assert expr(to_api["resourceAppId"]) == "apiApp.appId"
    assert to_api["resourceAccess"] == [{"id": "scopeId", "type": "Scope"}]
    assert sign_in == "signInAccess"
    assert variable(IDENTITY, "signInAccess")["resourceAppId"] == "graphAppId"
    assert variable(IDENTITY, "graphAppId") == "00000003-0000-0000-c000-000000000000"
    # opsctl and the Azure CLI (`az login`) get user_impersonation without a consent prompt.
    preauthorized = {
        expr(client["appId"]): client["delegatedPermissionIds"]
        for client in resource(IDENTITY, "api")["api"]["preAuthorizedApplications"]
    }
    assert preauthorized == {"opsctl.appId": ["scopeId"], "azureCliAppId": ["scopeId"]}
    assert variable(IDENTITY, "azureCliAppId") == "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


def test_only_assigned_principals_get_tokens_for_the_api() -> None:
    principals = {expr(sp["appId"]): sp for _, _, sp in resources("Microsoft.Graph/servicePrincipals")}
    assert set(principals) == {"api.appId", "opsctl.appId"}
    assert principals["api.appId"]["appRoleAssignmentRequired"] is True
    # The deployer owns what it made, so it can redeploy and assign the roles without a directory role.
    for body in (resource(IDENTITY, "api"), resource(IDENTITY, "opsctl"), principals["api.appId"]):
        assert owners(body) == ["deployer().objectId"]


def test_the_app_gets_the_registrations_ids() -> None:
    settings = app_settings()
    outputs = template(IDENTITY)["outputs"]
    assert expr(outputs["apiClientId"]["value"]) == "api.appId"
    assert expr(outputs["opsctlClientId"]["value"]) == "opsctl.appId"
    expected = {
        "MLOPS_AUTH_TENANT_ID": "tenant().tenantId",
        "MLOPS_AUTH_CLIENT_ID": "identity.outputs.apiClientId",
        "MLOPS_AUTH_OPSCTL_CLIENT_ID": "identity.outputs.opsctlClientId",
    }
    assert {name: expr(settings[name]) for name in expected} == expected
    # ... and azd's environment, for opsctl.
    main_outputs = template("main.bicep")["outputs"]
    assert {name: expr(main_outputs[name]["value"]) for name in expected} == expected
    assert settings["MLOPS_AUTH_AUTHORITY"] == "authAuthority"
    assert expr(variable("main.bicep", "loginEndpoint")) == "environment().authentication.loginEndpoint"


# checkov ----------------------------------------------------------------------------


def test_every_checkov_skip_gives_its_reason() -> None:
    skips = [
        (path.name, line.strip())
        for path in INFRA.rglob("*.bicep")
        for line in path.read_text().splitlines()
        if "checkov:skip=" in line
    ]
    assert skips
    for file, line in skips:
        check, _, reason = line.partition("checkov:skip=")[2].partition(":")
        assert re.fullmatch(r"CKV2?_AZURE_\d+", check), f"{file}: {line}"
        assert len(reason.split()) >= 4, f"{file}: skip of {check} gives no reason"
    assert "skip-check" not in (INFRA / ".checkov.yaml").read_text(), "skip inside the resource, with a reason"


def test_the_role_table_holds_valid_role_definition_ids() -> None:
    for name, role_id in roles_json().items():
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", role_id), name


def test_the_parameters_file_fills_every_required_parameter() -> None:
    parameters = template("main.bicep")["parameters"]
    # pycep gives a parameter without a default `"default": None`.
    required = {name for name, parameter in parameters.items() if parameter.get("default") is None}
    supplied = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert {"environmentName", "workspaces"} <= required
    assert required <= set(supplied)
    assert set(supplied) <= set(parameters), "main.parameters.json sets a parameter main.bicep lacks"


def test_azd_deploys_the_repository_root_to_the_tagged_app() -> None:
    azure_yaml = (Path(ROOT) / "azure.yaml").read_text()
    assert re.search(r"^\s+app:\n\s+project: \.\n\s+language: python\n\s+host: function$", azure_yaml, re.M)
    tags = resource("modules/app.bicep", "app")["tags"]["function"]["parameters"]["arg_2"]
    assert tags == {"'azd-service-name'": "app"}  # pycep keeps the quotes of a quoted key
