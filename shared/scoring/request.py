"""What a scoring job is asked to do, validated before anything runs.

Blob paths are `container/name`; every name that goes into a URL or a state path is
checked here, so a bad request fails with the field that is wrong. Validated with the
context `{OUTPUT_CONTAINERS: {...}}`, an output container must be one of those (the
settings' output container): scoring never writes into models, state or the host's keys.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from shared.domain.ports import SAFE_NAME

CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
COLUMN = re.compile(r"^[^\x00-\x1f]{1,256}$")
OutputFormat = Literal["csv", "parquet"]
OUTPUT_CONTAINERS = "output_containers"


def check_blob_path(value: str) -> str:
    """`container/name`, with a valid container and a name that cannot escape or smuggle anything."""
    container, _, name = value.partition("/")
    if not CONTAINER.match(container):
        raise ValueError(f"{container!r} is not a valid container name (3-63 of a-z, 0-9, -)")
    check_blob_name(name)
    return value


def check_blob_name(name: str) -> str:
    parts = name.split("/")
    if not name or len(name) > 1024 or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{name!r} is not a valid blob name (no empty, '.' or '..' segments)")
    if any(ord(char) < 32 or char in '\\?#"' for char in name):
        raise ValueError(f'{name!r} contains a control character or one of \\ ? # "')
    return name


class RegisteredModel(BaseModel):
    """A model version registered in a workspace or registry, fetched through the ML platform."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    location: str = Field(pattern=SAFE_NAME.pattern.replace("_.-", "_.:-"))
    name: str = Field(pattern=SAFE_NAME.pattern)
    version: str = Field(pattern=SAFE_NAME.pattern)

    def key(self) -> tuple[str, str, str]:
        return self.location, self.name, self.version


class OnnxBlob(BaseModel):
    """An ONNX file in blob storage, as `container/path.onnx`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    blob: str

    @field_validator("blob")
    @classmethod
    def _check(cls, value: str) -> str:
        check_blob_path(value)
        if not value.lower().endswith(".onnx"):
            raise ValueError(f"{value!r} must name an .onnx file")
        return value

    def parts(self) -> tuple[str, str]:
        container, _, name = self.blob.partition("/")
        return container, name


ModelRef = RegisteredModel | OnnxBlob


class OutputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    container: str | None = None
    path: str | None = None
    format: OutputFormat | None = None

    @field_validator("container")
    @classmethod
    def _check_container(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not CONTAINER.match(value):
            raise ValueError(f"{value!r} is not a valid container name (3-63 of a-z, 0-9, -)")
        allowed = (info.context or {}).get(OUTPUT_CONTAINERS)
        if value is not None and allowed is not None and value not in allowed:
            names = ", ".join(sorted(allowed))
            raise ValueError(f"{value!r} is not an output container; scoring writes only to {names}")
        return value

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str | None) -> str | None:
        return value if value is None else check_blob_name(value)


class ScoringRequest(BaseModel):
    """`POST /api/score`: score `input` with `model`, write to `output`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str = Field(description="container/name of a .csv, .parquet or .jsonl blob")
    model: ModelRef
    output: OutputSpec = Field(default_factory=OutputSpec)
    features: list[str] | None = Field(None, min_length=1, description="default: the model's feature_names metadata")
    id_columns: list[str] = Field(default_factory=list, description="copied to the output next to the predictions")

    @field_validator("input")
    @classmethod
    def _check_input(cls, value: str) -> str:
        return check_blob_path(value)

    @field_validator("features", "id_columns")
    @classmethod
    def _check_columns(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if not COLUMN.match(name):
                raise ValueError(f"{name!r} is not a column name")
        if value and len(set(value)) != len(value):
            raise ValueError("columns are listed twice")
        return value

    def input_parts(self) -> tuple[str, str]:
        container, _, name = self.input.partition("/")
        return container, name
