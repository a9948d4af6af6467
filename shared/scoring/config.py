"""Batch-scoring settings: the `scoring` part of `shared.settings.Settings`
(aliases are app-setting names, `MLOPS_SCORING_*`)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ScoringConfig(BaseModel):
    """How batch scoring splits, reads and fails."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    input_container: str = Field("scoring-input", alias="MLOPS_SCORING_INPUT_CONTAINER")
    output_container: str = Field("scoring-output", alias="MLOPS_SCORING_OUTPUT_CONTAINER")
    queue: str = Field("scoring-ranges", alias="MLOPS_SCORING_QUEUE")
    range_bytes: int = Field(256 * 1024**2, ge=1024, alias="MLOPS_SCORING_RANGE_BYTES")
    chunk_bytes: int = Field(8 * 1024**2, ge=1024, alias="MLOPS_SCORING_CHUNK_BYTES")
    block_bytes: int = Field(8 * 1024**2, ge=1024, le=4000 * 1024**2, alias="MLOPS_SCORING_BLOCK_BYTES")
    batch_rows: int = Field(4096, ge=1, alias="MLOPS_SCORING_BATCH_ROWS")
    max_error_share: float = Field(0.01, ge=0, le=1, alias="MLOPS_SCORING_MAX_ERROR_SHARE")
    threads: int = Field(0, ge=0, alias="MLOPS_SCORING_THREADS")
    model_cache: str = Field("", alias="MLOPS_SCORING_MODEL_CACHE")
    handoff_bytes: int = Field(50 * 1024**3, ge=0, alias="MLOPS_SCORING_HANDOFF_BYTES")
    batch_endpoint: str | None = Field(None, alias="MLOPS_SCORING_BATCH_ENDPOINT")

    @field_validator("batch_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-z][a-z0-9-]{0,31}/[A-Za-z][A-Za-z0-9-]{2,31}$", value):
            raise ValueError(f"{value!r} must be <workspace>/<batch endpoint name>")
        return value

    @classmethod
    def names(cls) -> list[str]:
        return [str(field.alias) for field in cls.model_fields.values()]
