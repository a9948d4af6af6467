"""The app's settings: one typed object read from app settings / the environment.

Every setting the code reads is a field here, named by its app-setting alias, so the
list in `local.settings.example.json`, the README and `infra/` can be checked against
this one model. Settings are validated once per process; a bad configuration fails
with one error that names every missing or invalid setting.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.bindings import BINDING_SETTINGS
from shared.domain.names import LOGICAL_NAME, WORKSPACE_ID
from shared.scoring.config import ScoringConfig


class SettingsError(ValueError):
    """The app settings are missing or invalid; the message names each one."""


class Settings(BaseModel):
    """Validated app settings. Field aliases are the app-setting names."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    storage_connection: str | None = Field(None, alias="AzureWebJobsStorage")
    storage_blob_uri: str | None = Field(None, alias="AzureWebJobsStorage__blobServiceUri")
    storage_queue_uri: str | None = Field(None, alias="AzureWebJobsStorage__queueServiceUri")
    storage_table_uri: str | None = Field(None, alias="AzureWebJobsStorage__tableServiceUri")
    storage_client_id: str | None = Field(None, alias="AzureWebJobsStorage__clientId")

    policy_path: str = Field("policy/policy.yaml", alias="MLOPS_POLICY_PATH")
    state_container: str = Field("mlops-state", alias="MLOPS_STATE_CONTAINER")

    workspaces: dict[str, str] = Field(default_factory=dict, alias="MLOPS_WORKSPACES")
    # A local Azure ML service in place of Azure (see shared/adapters/azureml/localservice.py).
    azureml_endpoint: str | None = Field(None, alias="MLOPS_AZUREML_ENDPOINT")
    azureml_storage_suffix: str | None = Field(None, alias="MLOPS_AZUREML_STORAGE_SUFFIX")
    registry: str | None = Field(None, alias="MLOPS_REGISTRY")
    # The app's identity: a user-assigned managed identity's client id; or, with a client secret, a service principal's
    # (the names azure-identity's EnvironmentCredential reads; local runs, against the local Entra ID).
    managed_identity_client_id: str | None = Field(None, alias="AZURE_CLIENT_ID")
    azure_tenant_id: str | None = Field(None, alias="AZURE_TENANT_ID")
    azure_client_secret: str | None = Field(None, alias="AZURE_CLIENT_SECRET", repr=False)
    azure_authority_host: str | None = Field(None, alias="AZURE_AUTHORITY_HOST")

    notify_teams_url: str | None = Field(None, alias="MLOPS_NOTIFY_TEAMS_URL")
    notify_slack_url: str | None = Field(None, alias="MLOPS_NOTIFY_SLACK_URL")
    notify_webhook_url: str | None = Field(None, alias="MLOPS_NOTIFY_WEBHOOK_URL")
    notify_webhook_secret: str | None = Field(None, alias="MLOPS_NOTIFY_WEBHOOK_SECRET", repr=False)
    notify_eventgrid_endpoint: str | None = Field(None, alias="MLOPS_NOTIFY_EVENTGRID_ENDPOINT")

    # Who may call the admin API: Entra ID access tokens for the app's registration (see shared/adapters/identity.py).
    auth_authority: str = Field("https://login.microsoftonline.com", alias="MLOPS_AUTH_AUTHORITY",
                                pattern=r"^https://[^/?#\s]+$")
    auth_tenant_id: str | None = Field(None, alias="MLOPS_AUTH_TENANT_ID", pattern=r"^[0-9a-fA-F-]{36}$")
    auth_client_id: str | None = Field(None, alias="MLOPS_AUTH_CLIENT_ID", pattern=r"^[0-9a-fA-F-]{36}$")
    auth_opsctl_client_id: str | None = Field(None, alias="MLOPS_AUTH_OPSCTL_CLIENT_ID",
                                              pattern=r"^[0-9a-fA-F-]{36}$")

    # Read by the Functions host from the timer bindings (`%MLOPS_..._SCHEDULE%`), NCRONTAB.
    resync_schedule: str = Field("0 */5 * * * *", alias="MLOPS_RESYNC_SCHEDULE")
    rollout_schedule: str = Field("*/30 * * * * *", alias="MLOPS_ROLLOUT_SCHEDULE")

    scoring: ScoringConfig = Field(default_factory=ScoringConfig, alias="scoring", description="MLOPS_SCORING_*")

    @field_validator("workspaces", mode="before")
    @classmethod
    def _parse_workspaces(cls, value: object) -> object:
        """Accept `dev=/subscriptions/...,prod=/subscriptions/...` as app settings are strings."""
        if not isinstance(value, str):
            return value
        pairs = [item.strip() for item in value.split(",") if item.strip()]
        parsed: dict[str, str] = {}
        for pair in pairs:
            name, sep, resource_id = pair.partition("=")
            if not sep:
                raise ValueError(f"expected name=/subscriptions/..., got {pair!r}")
            parsed[name.strip()] = resource_id.strip()
        return parsed

    @field_validator("workspaces")
    @classmethod
    def _check_workspaces(cls, value: dict[str, str]) -> dict[str, str]:
        for name, resource_id in value.items():
            if not LOGICAL_NAME.match(name):
                raise ValueError(f"workspace name {name!r} must match {LOGICAL_NAME.pattern}")
            if not WORKSPACE_ID.match(resource_id):
                raise ValueError(f"workspace {name!r}: {resource_id!r} is not a workspace resource id")
        return value

    @model_validator(mode="after")
    def _check_storage(self) -> Settings:
        if not self.storage_connection and not self.storage_blob_uri:
            raise ValueError(
                "storage is not configured: set AzureWebJobsStorage (a connection string) or "
                "AzureWebJobsStorage__blobServiceUri and AzureWebJobsStorage__queueServiceUri "
                "(managed identity)"
            )
        if self.storage_blob_uri and not self.storage_queue_uri:
            raise ValueError("AzureWebJobsStorage__queueServiceUri is required with __blobServiceUri")
        if self.azureml_endpoint:
            from shared.adapters.azureml.loopback import is_loopback

            if not self.azureml_endpoint.startswith("https://"):
                raise ValueError("MLOPS_AZUREML_ENDPOINT must be an https:// URL")
            if not is_loopback(self.azureml_endpoint):
                raise ValueError(
                    "MLOPS_AZUREML_ENDPOINT must be an https:// loopback URL (the local Azure ML service): the app's "
                    "Resource Manager tokens are sent there"
                )
        if self.azure_client_secret and not (self.azure_tenant_id and self.managed_identity_client_id):
            raise ValueError("AZURE_CLIENT_SECRET needs AZURE_TENANT_ID and AZURE_CLIENT_ID (the service principal)")
        if self.azure_authority_host and not self.azure_authority_host.startswith("https://"):
            raise ValueError("AZURE_AUTHORITY_HOST must be an https:// URL")
        return self

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Validate settings from a mapping; raise SettingsError naming every problem."""
        aliases = {field.alias for field in cls.model_fields.values()}
        values: dict[str, object] = {key: value for key, value in environ.items() if key in aliases and value != ""}
        scoring = set(ScoringConfig.names())
        values["scoring"] = {key: value for key, value in environ.items() if key in scoring and value != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            problems = []
            for item in error.errors():
                where = ".".join(str(part) for part in item["loc"][1:] if item["loc"][0] == "scoring")
                where = where or ".".join(str(part) for part in item["loc"]) or "settings"
                problems.append(f"{where}: {item['msg']}")
            raise SettingsError("invalid app settings: " + "; ".join(problems)) from None

    @classmethod
    def names(cls) -> list[str]:
        """Every app-setting name the code reads."""
        own = [str(field.alias) for name, field in cls.model_fields.items() if name != "scoring"]
        return sorted([*own, *ScoringConfig.names()])


def binding_defaults() -> dict[str, str]:
    """Each setting of `BINDING_SETTINGS` with the model's default, for hosts that start without them."""
    defaults = Settings.model_validate({"AzureWebJobsStorage": "defaults"})
    values = {**defaults.model_dump(by_alias=True), **defaults.scoring.model_dump(by_alias=True)}
    return {name: str(values[name]) for name in BINDING_SETTINGS}


@functools.cache
def get_settings() -> Settings:
    """The process's settings, validated on first use."""
    return Settings.from_environ(os.environ)
