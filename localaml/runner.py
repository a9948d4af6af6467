"""The job runner: runs one component step for real, as an Azure ML compute node does.

`launch()` (in the service) starts `python -m localaml.runner <spec.json>` and waits for it.
The runner downloads the step's code and inputs from the service's storage account into a
working folder, puts the local paths in place of `${{inputs.x}}` / `${{outputs.y}}` in the
component's command, runs the command in the code folder with this interpreter's `python`
first on PATH, and uploads the outputs and the log (`user_logs/std_log.txt`, where Azure ML
keeps a step's output). The step logs to its MLflow run as on Azure ML: MLFLOW_TRACKING_URI
is the workspace's tracking server, MLFLOW_RUN_ID the step's run, MLFLOW_TRACKING_TOKEN a
token the service issues (`credential.issue`), MLFLOW_TRACKING_SERVER_CERT_PATH the local CA.

Environment of the runner: LOCALAML_STORAGE (a connection string of the storage account),
LOCALAML_CA_BUNDLE (the CA file both the storage account and the service are trusted by).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localaml.service import LocalAzureML

PLACEHOLDER = re.compile(r"\$\{\{\s*(?P<kind>inputs|outputs)\.(?P<name>[A-Za-z0-9_]+)\s*\}\}")
OPTIONAL = re.compile(r"\$\[\[(?P<body>.*?)\]\]", re.S)  # an optional argument: kept only if its inputs are set
ERROR_LINES = 5
DEADLINE_SECONDS = 600
_RUNNING: weakref.WeakKeyDictionary[LocalAzureML, set[subprocess.Popen[str]]] = weakref.WeakKeyDictionary()
_BY_JOB: weakref.WeakKeyDictionary[LocalAzureML, dict[str, subprocess.Popen[str]]] = weakref.WeakKeyDictionary()


def launch(
    service: LocalAzureML, spec: dict[str, Any], env: dict[str, str], *, job: str = "",
    stopped: Callable[[], bool] = lambda: False,
) -> tuple[int, str]:
    """Run the step described by `spec` for `job`; (exit code, the end of its error output).

    `stop(service, job)` ends it; so does `stopped()` turning true before it started (a cancel that
    came while the step was being set up)."""
    from localaml.credential import issue

    assert service.storage is not None
    credential = service.storage.credential
    connection = (
        f"DefaultEndpointsProtocol=https;AccountName={credential.account_name};"
        f"AccountKey={credential.account_key};BlobEndpoint={service.storage.url.rstrip('/')};"
    )
    ca_file = os.environ.get("LOCALAML_CA_BUNDLE") or os.environ.get("REQUESTS_CA_BUNDLE", "")
    environment = {
        **os.environ, **env,
        "LOCALAML_STORAGE": connection,
        "LOCALAML_CA_BUNDLE": ca_file,
        "MLFLOW_TRACKING_TOKEN": issue(service.token_secret, "https://ml.azure.com"),
        "MLFLOW_TRACKING_SERVER_CERT_PATH": ca_file,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(spec, file)
    # Its own session, so that stopping the service ends the step and every process it started.
    process = subprocess.Popen(
        [sys.executable, "-m", "localaml.runner", file.name], env=environment, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1], start_new_session=True,
    )
    running = _RUNNING.setdefault(service, set())
    running.add(process)
    by_job = _BY_JOB.setdefault(service, {})
    by_job[job] = process
    if stopped():  # the stop came before the process was known: it ends here (see `stop`)
        _kill(process)
    try:
        _, errors = process.communicate(timeout=DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        _kill(process)
        return 1, f"the step did not finish within {DEADLINE_SECONDS} s"
    finally:
        running.discard(process)
        if by_job.get(job) is process:
            del by_job[job]
        Path(file.name).unlink(missing_ok=True)
    return process.returncode, _tail(errors)


def stop(service: LocalAzureML, job: str) -> None:
    """End the step `job` is running, if any (its job was canceled).

    The caller makes `stopped()` true first: then either this finds the process, or `launch` sees
    the flag once it has registered it."""
    process = _BY_JOB.get(service, {}).get(job)
    if process is not None:
        _kill(process)


def stop_all(service: LocalAzureML) -> None:
    """End every step the service is running (the service is stopping); their jobs end Failed."""
    for process in list(_RUNNING.get(service, ())):
        _kill(process)


def _kill(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-ERROR_LINES:])


# -- the subprocess ------------------------------------------------------------------------


def _storage() -> Any:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(
        os.environ["LOCALAML_STORAGE"], connection_verify=os.environ.get("LOCALAML_CA_BUNDLE") or True
    )


def download(storage: Any, location: dict[str, str], destination: Path) -> Path:
    """The blobs under the location into `destination`; the path to give the command (a file for a file)."""
    container = storage.get_container_client(location["container"])
    prefix = location["prefix"]
    destination.mkdir(parents=True, exist_ok=True)
    names = [blob.name for blob in container.list_blobs(name_starts_with=prefix)]
    if not names:
        raise SystemExit(f"no files at {location['container']}/{prefix}")
    for name in names:
        relative = name[len(prefix):].lstrip("/") or name.rsplit("/", 1)[-1]
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(container.download_blob(name).readall())
    if location.get("type") == "uri_file" and len(names) == 1:
        return destination / (names[0][len(prefix):].lstrip("/") or names[0].rsplit("/", 1)[-1])
    return destination


def upload(storage: Any, folder: Path, location: dict[str, str]) -> None:
    container = storage.get_container_client(location["container"])
    prefix = location["prefix"].rstrip("/")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        container.upload_blob(f"{prefix}/{path.relative_to(folder).as_posix()}", path.read_bytes(), overwrite=True)


def render(command: str, paths: dict[str, dict[str, str]]) -> str:
    """The command with `${{inputs.x}}` / `${{outputs.y}}` replaced; `$[[...]]` parts kept if all are set."""

    def optional(match: re.Match[str]) -> str:
        wanted = PLACEHOLDER.findall(match["body"])
        return match["body"] if all(name in paths[kind] for kind, name in wanted) else ""

    def value(match: re.Match[str]) -> str:
        found = paths[match["kind"]].get(match["name"])
        if found is None:
            raise SystemExit(f"the command uses {match[0]}, which the step does not set")
        return found

    return PLACEHOLDER.sub(value, OPTIONAL.sub(optional, command))


def run_step(spec: dict[str, Any], work: Path) -> int:
    storage = _storage()
    code = download(storage, spec["code"], work / "code") if spec.get("code") else work
    paths: dict[str, dict[str, str]] = {"inputs": {}, "outputs": {}}
    for name, source in spec["inputs"].items():
        if "value" in source:
            paths["inputs"][name] = str(source["value"])
        else:
            paths["inputs"][name] = str(download(storage, source, work / "inputs" / name))
    for name in spec["outputs"]:
        (work / "outputs" / name).mkdir(parents=True, exist_ok=True)
        paths["outputs"][name] = str(work / "outputs" / name)
    command = render(spec["command"], paths)
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in ("LOCALAML_STORAGE",):  # the step gets no key to the whole storage account
        environment.pop(name, None)
    done = subprocess.run(command, shell=True, cwd=code, env=environment, capture_output=True, text=True)
    log = f"$ {command}\n{done.stdout}{done.stderr}"
    if spec.get("log"):
        storage.get_container_client(spec["log"]["container"]).upload_blob(
            spec["log"]["blob"], log.encode(), overwrite=True
        )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        return done.returncode
    for name, location in spec["outputs"].items():
        upload(storage, work / "outputs" / name, location)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        sys.stderr.write("usage: python -m localaml.runner <spec.json>\n")
        return 2
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="localaml-step-") as work:
        return run_step(spec, Path(work))


if __name__ == "__main__":
    raise SystemExit(main())
