"""Jobs: pipeline and command jobs, checked as Azure ML checks them and then really run.

A job PUT (`PUT .../workspaces/<ws>/jobs/<name>`, REST spec examples `Job/PipelineJob/createOrUpdate.json`,
`Job/CommandJob/createOrUpdate.json`) is refused with Azure ML's UserError when it cannot run:
a step's component version or the compute does not exist, a step binds an input its component
does not declare or leaves a required one unbound, or it binds a pipeline input or output the
job does not declare (no public recording shows these refusals: status 400 and code UserError
are Azure ML's for a request it cannot run, the wording is ours).

The service adds its own entries to a new job's property bag (`azureml.runsource`, `runSource:
MFE`, `runType: HTTP`, as a created pipeline job shows them in Azure/azureml-examples
`cli/pipelines/5a_env_public_docker_image/README.md`), and a job's properties cannot change. So
a second PUT of an existing job, even the same body again (a retried request), is refused with
status 400, code UserError, inner code `JobPropertyImmutable` (what Azure ML answers when a job
of that name exists, as users of azure-ai-ml report it; no public recording shows the full body,
so the message wording is ours). A PUT of the job as GET answers it, with other tags,
description or display name, updates those.

An accepted job is stored `NotStarted` with its Studio link (`services.Studio`), gets its MLflow
run (run id = job name), and a thread runs it: status Starting, Running, then Completed or
Failed. Each step is an MLflow child run (tag `mlflow.parentRunId` = job name) executed by a
`python -m localaml.runner` subprocess with the component's own command and code. A pipeline
output with `assetName` is registered as a model version when the job completes (docs: "Manage
inputs and outputs of component and pipeline", "Register output as named asset"). At the end
the service publishes RunCompleted, or RunStatusChanged (Failed), to Event Grid.

What azure-ai-ml's own e2e tests (`Azure/azure-sdk-for-python`, `sdk/ml/azure-ai-ml/tests/command_job/
e2etests/test_command_job.py`) expect of Azure, re-expressed in `tests/fidelity/test_sdk_jobs.py`:

- `isArchived` changes on a PUT of an existing job: `jobs.archive()` / `restore()` PUT the job as GET
  answers it with the flag flipped (azure-ai-ml `_archive_or_restore`), and an archived job leaves the
  active list (`test_command_job_archive_restore`);
- a job input on a datastore the workspace does not have is refused: "The datastore <name> could not be
  found in this workspace" (`test_command_job_invalid_datastore`);
- `POST .../jobs/<name>/cancel` cancels (REST spec example `stable/2022-10-01/examples/Job/cancel.json`,
  "Cancels a Job (asynchronous)"; generated client `JobsOperations._cancel_initial`: 200 or 202 with
  `Location` and `Retry-After`, polled at `Location` until it ends): the job reads `CancelRequested`, its
  running step is stopped, and it ends `Canceled` (`test_command_job_cancel` accepts either state right
  after the poller's result). Canceling a job that has ended changes nothing.

Code assets are uploaded the way azure-ai-ml does it: `POST .../codes/<name>/versions/<v>/
startPendingUpload` answers a SAS URL of a fresh container (REST spec example
`CodeVersion/createOrGetStartPendingUpload.json`), the SDK uploads there and PUTs the code
version with that blob URI.
"""

from __future__ import annotations

import re
import threading
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from localaml import events, mlflow
from localaml.datastores import ACCOUNT, ACCOUNT_KEY, DEFAULT_DATASTORE
from localaml.errors import AzureError, Reply, not_found, user_error
from localaml.service import Hooks, Operation, now

if TYPE_CHECKING:
    from localaml.service import LocalAzureML

JOB_PATH = re.compile(r"^(?P<scope>/subscriptions/.+/workspaces/(?P<workspace>[^/]+))/jobs/(?P<name>[^/]+)$", re.I)
BINDING = re.compile(r"^\$\{\{\s*parent\.(?P<kind>inputs|outputs|jobs)\.(?P<name>[^.}\s]+)(?P<rest>[^}]*)\}\}$")
# What may change on a second PUT of a job; the rest is what Azure ML refuses to change.
MUTABLE = ("tags", "description", "displayName", "status", "services", "isArchived")
TERMINAL = ("Completed", "Failed", "Canceled")
# What the service adds to a new job's property bag (Azure/azureml-examples
# cli/pipelines/5a_env_public_docker_image/README.md shows a created pipeline job's).
SERVICE_PROPERTIES = {"Pipeline": {"azureml.runsource": "azureml.PipelineRun"}, "Command": {}}


@dataclass
class JobRecord:
    """What the service keeps about a job beyond its resource: how it went."""

    workspace: str
    name: str
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    canceled: bool = False  # a cancel was asked: the job ends Canceled
    cancel: Operation | None = None  # the cancel's operation, finished when the job has ended


_RECORDS: weakref.WeakKeyDictionary[LocalAzureML, dict[str, JobRecord]] = weakref.WeakKeyDictionary()


def records(service: LocalAzureML) -> dict[str, JobRecord]:
    """The service's job records by lower-cased job path."""
    return _RECORDS.setdefault(service, {})


def install(service: LocalAzureML) -> None:
    service.on("workspaces/jobs", Hooks(put=put_job))
    service.route("POST", r"^(?P<scope>/subscriptions/.+/workspaces/[^/]+)/jobs/(?P<name>[^/]+)/cancel$",
                  lambda **kw: cancel_job(service, **kw))
    service.route(
        "POST", r"^(?P<scope>/subscriptions/.+/workspaces/[^/]+)/codes/(?P<name>[^/]+)/versions/(?P<version>[^/]+)"
        r"/startPendingUpload$", lambda **kw: start_pending_upload(service, **kw),
    )


# -- refusals -------------------------------------------------------------------------------


def immutable(name: str, changed: list[str]) -> AzureError:
    return user_error(
        f"Job {name} already exists and its properties cannot be changed: {', '.join(changed)}. "
        "Only tags, description and display name of an existing job can be updated.",
        "JobPropertyImmutable",
    )


def compute_missing(name: str) -> AzureError:
    """As a job on a missing cluster fails (Azure/MachineLearningNotebooks#906: UserError, this message)."""
    return AzureError(400, "UserError", f"AzureMLCompute cluster {name} does not exist",
                      details=[{"code": "ComputeNotFound", "message": f"AzureMLCompute cluster {name} does not exist"}],
                      inner={"code": "ComputeNotFound"})


def invalid_job(message: str, target: str) -> AzureError:
    return user_error(message, "JobValidation", target=target)


# -- the PUT ------------------------------------------------------------------------------


def put_job(service: LocalAzureML, path: str, resource: dict[str, Any], existing: dict[str, Any] | None) -> Reply:
    match = JOB_PATH.match(path)
    if match is None:
        raise invalid_job(f"{path} is not a workspace job", "name")
    key = path.lower()
    properties = resource["properties"]
    if existing is not None:
        submitted = {k: v for k, v in properties.items() if k not in MUTABLE}
        before = {k: v for k, v in existing["properties"].items() if k not in MUTABLE}
        changed = sorted(k for k in set(before) | set(submitted) if before.get(k) != submitted.get(k))
        if changed:
            raise immutable(match["name"], changed)
        for name in ("tags", "description", "displayName", "isArchived"):
            if name in properties:
                existing["properties"][name] = properties[name]
        return Reply(200, existing)
    plan = check_job(service, match["scope"], properties)
    properties["properties"] = {**(properties.get("properties") or {}), **SERVICE_PROPERTIES.get(
        properties.get("jobType", ""), {}), "runSource": "MFE", "runType": "HTTP"}
    if properties.get("jobType") == "Command":
        plan[0].run_id = match["name"]
    properties["status"] = "NotStarted"
    properties["services"] = {"Studio": {"endpoint": service.studio_url(path), "jobServiceType":
                                         "Studio"}}
    service.resources[key] = resource
    record = JobRecord(match["workspace"], match["name"])
    records(service)[key] = record
    experiment = properties.get("experimentName") or "Default"
    mlflow.new_run(service, match["name"], experiment_id(match["workspace"], experiment), match["name"],
                   tags={"azureml.experimentName": experiment, **(properties.get("tags") or {})})
    if service.storage is not None:
        record.thread = threading.Thread(
            target=run_job, args=(service, key, plan), name=f"job-{match['name']}", daemon=True
        )
        record.thread.start()
    return Reply(201, resource)


def experiment_id(workspace: str, experiment: str) -> str:
    return events.stable_id(workspace, "experiment", experiment)


@dataclass
class Step:
    """One command to run: a pipeline's step or a command job itself."""

    name: str
    component: dict[str, Any]  # the component spec: command, code, inputs, outputs
    inputs: dict[str, Any]  # input name -> binding or {"uri", "jobInputType"} or {"value"}
    outputs: dict[str, Any]  # output name -> binding, or the job's own output (a command job)
    run_id: str | None = None  # a command job logs into its own run; a pipeline step gets a child run


def datastore_missing(name: str) -> AzureError:
    """The SDK e2e test `test_command_job.py::test_command_job_invalid_datastore` expects these words."""
    return user_error(f"The datastore {name} could not be found in this workspace.", "DatastoreNotFound",
                      target="inputs")


def _check_datastores(service: LocalAzureML, scope: str, properties: dict[str, Any]) -> None:
    """Every input on a datastore names one the workspace has."""
    from localaml.datastores import DATASTORE_URI

    for value in (properties.get("inputs") or {}).values():
        match = DATASTORE_URI.match(str(value.get("uri", ""))) if isinstance(value, dict) else None
        if match is None:
            continue
        workspace_scope = service.workspace_id(match["workspace"]) if match["workspace"] else scope
        if f"{workspace_scope}/datastores/{match['datastore']}".lower() not in service.resources:
            raise datastore_missing(match["datastore"])


def check_job(service: LocalAzureML, scope: str, properties: dict[str, Any]) -> list[Step]:
    """The steps of a job Azure ML would accept; its refusal otherwise."""
    kind = properties.get("jobType")
    _check_datastores(service, scope, properties)
    if kind == "Pipeline":
        return _check_pipeline(service, scope, properties)
    if kind == "Command":
        _check_compute(service, scope, properties.get("computeId"))
        component = _component(service, properties["componentId"]) if properties.get("componentId") else {
            "command": properties.get("command", ""), "code": properties.get("codeId"),
            "inputs": {name: {"type": value.get("jobInputType")} for name, value in
                       (properties.get("inputs") or {}).items()},
            "outputs": {name: {"type": value.get("jobOutputType")} for name, value in
                        (properties.get("outputs") or {}).items()},
        }
        return [Step("command", component, properties.get("inputs") or {}, properties.get("outputs") or {})]
    raise invalid_job(f"The local Azure ML service runs Pipeline and Command jobs, not {kind!r}.", "jobType")


def _check_pipeline(service: LocalAzureML, scope: str, properties: dict[str, Any]) -> list[Step]:
    settings = properties.get("settings") or {}
    declared_inputs = properties.get("inputs") or {}
    declared_outputs = properties.get("outputs") or {}
    steps = []
    for step_name, step in (properties.get("jobs") or {}).items():
        _check_compute(service, scope, step.get("computeId") or step.get("compute") or settings.get("default_compute"))
        if not step.get("componentId"):
            raise invalid_job(f"Step {step_name} has no component.", f"jobs.{step_name}.componentId")
        component = _component(service, step["componentId"])
        for direction, declared_by_job in (("inputs", declared_inputs), ("outputs", declared_outputs)):
            for port, value in (step.get(direction) or {}).items():
                if port not in (component.get(direction) or {}):
                    raise invalid_job(
                        f"Step {step_name}: component {component.get('name')}:{component.get('version')} has no "
                        f"{direction[:-1]} named {port}.", f"jobs.{step_name}.{direction}.{port}",
                    )
                binding = BINDING.match(str(value.get("value", ""))) if isinstance(value, dict) else None
                if binding and binding["kind"] == direction and binding["name"] not in declared_by_job:
                    raise invalid_job(
                        f"Step {step_name} binds {direction[:-1]} {port} to parent.{direction}.{binding['name']}, "
                        f"which the pipeline job does not declare.", f"jobs.{step_name}.{direction}.{port}",
                    )
        for port, spec in (component.get("inputs") or {}).items():
            required = not spec.get("optional") and spec.get("default") is None
            if required and port not in (step.get("inputs") or {}):
                raise invalid_job(f"Step {step_name}: required input {port} is not bound.",
                                  f"jobs.{step_name}.inputs.{port}")
        steps.append(Step(step_name, component, step.get("inputs") or {}, step.get("outputs") or {}))
    return _ordered(steps)


def _ordered(steps: list[Step]) -> list[Step]:
    """Steps after the steps whose outputs they read (`${{parent.jobs.<step>.outputs...}}`)."""
    ordered: list[Step] = []
    pending = list(steps)
    while pending:
        done = {step.name for step in ordered}
        ready = [step for step in pending if _upstream(step) <= done]
        if not ready:
            raise invalid_job("The pipeline's steps depend on each other in a cycle.", "jobs")
        ordered += ready
        pending = [step for step in pending if step not in ready]
    return ordered


def _upstream(step: Step) -> set[str]:
    names = set()
    for value in step.inputs.values():
        binding = BINDING.match(str(value.get("value", ""))) if isinstance(value, dict) else None
        if binding and binding["kind"] == "jobs":
            names.add(binding["name"])
    return names


def _check_compute(service: LocalAzureML, scope: str, compute: str | None) -> None:
    if not compute:
        raise invalid_job("The job names no compute.", "computeId")
    name = compute.rsplit("/", 1)[-1].removeprefix("azureml:")
    if f"{scope}/computes/{name}".lower() not in service.resources:
        raise compute_missing(name)


def _component(service: LocalAzureML, component_id: str) -> dict[str, Any]:
    """The spec of a registered component version. A missing one is a refusal of the job (400, UserError:
    no public recording shows this answer; a request naming what does not exist is Azure ML's UserError)."""
    resource = service.resources.get(component_id.removeprefix("azureml:").lower())
    if resource is None:
        parts = component_id.split("/")
        name = f"{parts[-3]}:{parts[-1]}" if len(parts) >= 3 else component_id
        raise user_error(f"Component {name} was not found in the workspace ({component_id}).", "NotFound",
                         target="componentId")
    return resource["properties"].get("componentSpec") or {}


# -- code upload ----------------------------------------------------------------------------


def start_pending_upload(
    service: LocalAzureML, scope: str, name: str, version: str, query: dict[str, str], body: Any,
    headers: dict[str, str],
) -> Reply:
    """A fresh container of the workspace's storage account and a SAS URL to upload into it."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    if service.storage is None:
        raise AzureError(500, "InternalServerError", "the local service has no storage account")
    container = f"code-{uuid.uuid4().hex}"
    service.storage.create_container(container)
    sas = generate_container_sas(
        ACCOUNT, container, account_key=ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, write=True, list=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    blob_uri = f"{service.storage.url.rstrip('/')}/{container}"
    return Reply(200, {
        "blobReferenceForConsumption": {
            "blobUri": blob_uri, "storageAccountArmId": None,
            "credential": {"credentialType": "SAS", "sasUri": f"{blob_uri}?{sas}"},
        },
        "pendingUploadId": (body or {}).get("pendingUploadId") or uuid.uuid4().hex,
        "pendingUploadType": "TemporaryBlobReference",
    })


def default_output_uri(step_run_id: str, output: str) -> str:
    """Where a step output goes when the job names no path (the docs' default output path)."""
    return f"azureml://datastores/{DEFAULT_DATASTORE}/paths/azureml/{step_run_id}/{output}/"


# -- running a job ---------------------------------------------------------------------------


class StepFailed(Exception):
    """A step ended unsuccessfully; the message is the job's error."""


def _set_status(service: LocalAzureML, resource: dict[str, Any], status: str) -> None:
    """The job's status; a job whose cancel was asked keeps reading `CancelRequested` until it has ended."""
    with service.lock:
        if resource["properties"].get("status") != "CancelRequested" or status in TERMINAL:
            resource["properties"]["status"] = status


class JobCanceled(Exception):
    """The job's cancel was asked: it runs no further step."""


def run_job(service: LocalAzureML, key: str, steps: list[Step]) -> None:
    """Run the steps in order, register named outputs, finish the job and publish its event."""
    record = records(service)[key]
    resource = service.resources[key]
    properties = resource["properties"]
    scope = JOB_PATH.match(resource["id"])["scope"]  # type: ignore[index]
    experiment = properties.get("experimentName") or "Default"
    status = "Failed"
    try:
        _set_status(service, resource, "Starting")
        mlflow.set_status(service, record.name, "RUNNING")
        _set_status(service, resource, "Running")
        produced: dict[tuple[str, str], str] = {}  # (step, output) -> datastore URI
        for step in steps:
            if record.canceled:
                raise JobCanceled
            _run_step(service, record, scope, experiment_id(record.workspace, experiment), step, properties, produced)
        if record.canceled:
            raise JobCanceled
        _register_outputs(service, record, scope, steps, properties, produced)
        status = "Completed"
    except JobCanceled:
        pass
    except (StepFailed, AzureError) as error:
        record.error = str(error)
    except Exception as error:  # the job fails with the reason, as Azure ML reports a system error
        record.error = f"{type(error).__name__}: {error}"
    finally:
        if record.canceled:  # a step stopped by the cancel ends the job Canceled, not Failed
            status, record.error = "Canceled", None
        _set_status(service, resource, status)
        mlflow.set_status(service, record.name, {"Completed": "FINISHED", "Canceled": "KILLED"}.get(status, "FAILED"))
        service.events.publish(*events.run_finished({
            "workspace": record.workspace, "name": record.name, "experiment": experiment,
            "experiment_id": experiment_id(record.workspace, experiment), "tags": properties.get("tags") or {},
            "properties": properties.get("properties") or {}, "status": status.lower(),
        }))
        _cancel_done(service, record)  # last: whoever waits for the job sees its event published


def _run_step(
    service: LocalAzureML, record: JobRecord, scope: str, experiment: str, step: Step, job: dict[str, Any],
    produced: dict[tuple[str, str], str],
) -> None:
    from localaml import runner

    run_id = step.run_id or str(uuid.uuid4())
    if step.run_id is None:
        mlflow.new_run(service, run_id, experiment, step.name, parent=record.name, status="RUNNING")
    inputs = {name: _input(service, record.workspace, job, value, produced) for name, value in step.inputs.items()}
    outputs = {}
    for name in step.component.get("outputs") or {}:
        uri = default_output_uri(run_id, name)
        produced[(step.name, name)] = uri
        outputs[name] = _location(service, record.workspace, uri)
    code = _code_location(service, step.component.get("code"))
    log = _location(service, record.workspace, f"azureml://datastores/{DEFAULT_DATASTORE}/paths/ExperimentRun/"
                    f"dcid.{run_id}/user_logs/std_log.txt")
    spec = {
        "command": step.component.get("command", ""), "code": code, "inputs": inputs, "outputs": outputs,
        "log": {"container": log["container"], "blob": log["prefix"]},
    }
    tracking = f"{service.base_url.rstrip('/')}/mlflow/v1.0{scope}"
    exit_code, error = runner.launch(service, spec, {"MLFLOW_TRACKING_URI": tracking, "MLFLOW_RUN_ID": run_id},
                                     job=f"{record.workspace}/{record.name}", stopped=lambda: record.canceled)
    if step.run_id is None:
        mlflow.set_status(service, run_id, "FINISHED" if exit_code == 0 else "KILLED" if record.canceled else "FAILED")
    if exit_code != 0:
        if step.run_id is None and not record.canceled:  # a failed step raises its own event (events.step_failed)
            service.events.publish(events.step_failed(
                record.workspace, experiment, job.get("experimentName") or "Default", run_id, record.name, step.name))
        raise StepFailed(f"step {step.name} failed (exit code {exit_code}): {error}")


def _input(
    service: LocalAzureML, workspace: str, job: dict[str, Any], value: Any, produced: dict[tuple[str, str], str]
) -> dict[str, str]:
    """A step input as the runner gets it: a literal value, or where its files are."""
    if not isinstance(value, dict):
        return {"value": str(value)}
    binding = BINDING.match(str(value.get("value", "")))
    if binding and binding["kind"] == "inputs":
        return _input(service, workspace, job, job["inputs"][binding["name"]], produced)
    if binding and binding["kind"] == "jobs":
        output = re.match(r"^\.outputs\.(?P<name>[^.]+)$", binding["rest"])
        if output is None or (binding["name"], output["name"]) not in produced:
            raise invalid_job(f"{value['value']} names no output of an earlier step", "jobs")
        return _location(service, workspace, produced[(binding["name"], output["name"])])
    if "uri" in value:
        return {**_location(service, workspace, value["uri"]), "type": str(value.get("jobInputType", ""))}
    return {"value": str(value.get("value", ""))}


def _location(service: LocalAzureML, workspace: str, uri: str) -> dict[str, str]:
    """Container and blob prefix of a datastore URI, a blob URL, or a model / data asset (its files)."""
    from localaml.datastores import locate

    if uri.startswith("azureml://") and "/datastores/" in uri:
        where = locate(uri, workspace)
        return {"container": where.container, "prefix": where.prefix}
    if uri.startswith("https://"):
        parts = uri.split("?", 1)[0].split("/", 3)[3].split("/")
        if parts[0] == ACCOUNT:  # path-style account URL (Azurite, IP host): /<account>/<container>/<path>
            parts = parts[1:]
        return {"container": parts[0], "prefix": "/".join(parts[1:])}
    asset = _asset(service, workspace, uri)
    if asset is None:
        raise user_error(f"The job input {uri} was not found.", "NotFound", status=404)
    properties = asset["properties"]
    return _location(service, workspace, properties.get("modelUri") or properties.get("dataUri") or "")


def _asset(service: LocalAzureML, workspace: str, uri: str) -> dict[str, Any] | None:
    """The model or data version an input names: ARM id, `azureml:<name>:<version>` or a registry URI."""
    registry = re.match(r"^azureml://registries/(?P<registry>[^/]+)/(?P<rest>.+)$", uri)
    if registry:
        return service.resources.get(f"{service.registry_id(registry['registry'])}/{registry['rest']}".lower())
    short = re.match(r"^azureml:(?P<name>[^/:]+):(?P<version>[^/:]+)$", uri)
    if short:
        scope = service.workspace_id(workspace)
        return service.resources.get(f"{scope}/models/{short['name']}/versions/{short['version']}".lower())
    return service.resources.get(uri.removeprefix("azureml:").lower())


def _code_location(service: LocalAzureML, code: str | None) -> dict[str, str] | None:
    if not code:
        return None
    resource = service.resources.get(code.removeprefix("azureml:").lower())
    if resource is None:
        raise user_error(f"The code asset {code} was not found.", "NotFound", status=404)
    return _location(service, "", resource["properties"]["codeUri"])


def _register_outputs(
    service: LocalAzureML, record: JobRecord, scope: str, steps: list[Step], job: dict[str, Any],
    produced: dict[tuple[str, str], str],
) -> None:
    """Register each job output that has an asset name: a command job's own, or the pipeline output a step's
    output is bound to."""
    from localaml.datastores import Location, read_files
    from localaml.models import register_version

    for step in steps:
        for port, value in step.outputs.items():
            if not isinstance(value, dict):
                continue
            binding = BINDING.match(str(value.get("value", "")))
            if binding and binding["kind"] == "outputs":
                declared = (job.get("outputs") or {}).get(binding["name"]) or {}
            else:
                declared = value if step.run_id else {}
            if not declared.get("assetName"):
                continue
            where = _location(service, record.workspace, produced[(step.name, port)])
            files = read_files(service, Location(where["container"], where["prefix"]))
            register_version(service, scope, declared["assetName"], files, job_name=record.name)


# -- cancel ----------------------------------------------------------------------------------


def cancel_job(
    service: LocalAzureML, scope: str, name: str, query: dict[str, str], body: Any, headers: dict[str, str]
) -> Reply:
    """Ask the job to stop: 202 with `Location` (its operation's result: 202 while the job stops, then 204)."""
    from localaml import runner

    key = f"{scope}/jobs/{name}".lower()
    resource = service.resources.get(key)
    if resource is None:
        raise not_found("JobNotFound", f"Job with name: {name} not found.")
    record = records(service).get(key)
    operation = service.start_operation(resource["id"], status="InProgress")
    if record is None or resource["properties"].get("status") in TERMINAL or record.done.is_set():
        operation.status, operation.end = "Succeeded", now()
    elif record.cancel is not None:  # asked before: the same stop goes on
        operation = record.cancel
    else:
        record.canceled, record.cancel = True, operation
        _set_status(service, resource, "CancelRequested")
        if record.thread is None:  # nothing runs it (a service without storage): it ends now
            _set_status(service, resource, "Canceled")
            mlflow.set_status(service, record.name, "KILLED")
            _cancel_done(service, record)
        else:
            runner.stop(service, f"{record.workspace}/{record.name}")
    result = service.operation_url(operation.id, query).replace("/mfeOperationsStatus/", "/mfeOperationResults/")
    return Reply(202, None, {"Location": result, "Retry-After": "0"})


def _cancel_done(service: LocalAzureML, record: JobRecord) -> None:
    """The job has ended: the cancel asked of it, if any, is done, and waiting for the job is over."""
    if record.cancel is not None and record.cancel.end is None:
        record.cancel.status, record.cancel.end = "Succeeded", now()
    record.done.set()


def wait(service: LocalAzureML, workspace: str, name: str, timeout: float = 120) -> JobRecord:
    """The job's record once it has finished (for tests and the local stack)."""
    record = records(service)[f"{service.workspace_id(workspace)}/jobs/{name}".lower()]
    if not record.done.wait(timeout):
        raise TimeoutError(f"job {name} in {workspace} did not finish within {timeout} s")
    return record
