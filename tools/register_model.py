"""Register a model version in the local Azure ML service that `./dev host` runs, as a data
scientist does with azure-ai-ml; the service then sends its `ModelRegistered` event to the
host, as Azure ML does through Event Grid, and the app starts the version's test.

    ./dev register                                # the next credit-risk version in dev, a good model
    ./dev register --quality bad                  # one that learned nothing: it fails its gates
    ./dev register --file model.onnx --name credit-risk-eu --tag team=risk

The service's address, token and CA bundle come from `.localdev/connection.json`, which
`./dev host` writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devhost.localaml import client_environment, person_clients, register_model_version
from tools.local_stack import WORKDIR, read_connection, workspace_names

CLIENT_SETTINGS = ("REQUESTS_CA_BUNDLE", "HTTPS_PROXY", "NO_PROXY")


def model_bytes(file: Path | None, quality: str) -> bytes:
    """The ONNX model to register: the file given, or one trained here on the sample data."""
    if file is not None:
        if not file.is_file():
            raise SystemExit(f"--file {file}: no such file")
        onnx_bytes = file.read_bytes()
        import onnxruntime

        try:  # what the test job and the endpoint will do with it: refuse it here, with why, not there
            onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        except Exception as error:
            first_line = next(iter(str(error).splitlines()), type(error).__name__)
            raise SystemExit(f"--file {file}: not an ONNX model ONNX Runtime can load ({first_line[:200]})") from None
        return onnx_bytes
    from localaml import samples

    return samples.good_model() if quality == "good" else samples.bad_model()


def tag_pairs(items: list[str]) -> dict[str, str]:
    tags = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--tag {item!r}: write it as name=value")
        tags[name] = value
    return tags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", default="dev", help="the workspace to register in (dev or prod)")
    parser.add_argument("--name", default="credit-risk", help="the model's name")
    parser.add_argument("--file", type=Path, help="an ONNX file (default: a model trained on the sample data)")
    parser.add_argument("--quality", choices=["good", "bad"], default="good",
                        help="without --file: a model that passes its gates (good) or one that learned nothing")
    parser.add_argument("--tag", action="append", default=[], metavar="NAME=VALUE", help="a tag; repeat for more")
    parser.add_argument("--as", dest="user", default="alice",
                        help="who registers it: a person of the local Entra ID (alice, bob, carol, dave, erin), "
                             "signed in by device code; Azure ML records them as its registrant")
    parser.add_argument("--workdir", type=Path, default=WORKDIR, help="the folder ./dev host keeps its state in")
    args = parser.parse_args(argv)
    settings = read_connection(args.workdir)["azureml"]
    workspaces = workspace_names(settings)
    if args.workspace not in workspaces:
        parser.error(f"--workspace {args.workspace!r}: the local service has {', '.join(workspaces)}")
    onnx = model_bytes(args.file, args.quality)
    with client_environment({name: settings[name] for name in CLIENT_SETTINGS}):
        try:
            client = person_clients(settings, args.user).ml(args.workspace)
        except ValueError as unknown:
            parser.error(f"--as {args.user!r}: {unknown}")
        version = register_model_version(client, args.workspace, args.name, onnx, tag_pairs(args.tag))
    print(f"registered {version.name}:{version.version} in {args.workspace} ({version.uri}) as {args.user}; "
          "the local Azure ML service sends its ModelRegistered event to the host")
    return 0


if __name__ == "__main__":
    sys.exit(main())
