"""How to reach a bucket: endpoint, region and the names of credential variables."""

from __future__ import annotations

from dagster import Config
from pydantic import ConfigDict, Field, model_validator

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class StorageOptions(Config):
    """How to reach a bucket. Secrets never appear here: credentials come from the provider's
    default chain, or from the environment variables these ``*_env`` fields name.

    A Dagster ``Config``, so that the resources carrying these options show them in the UI."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, R2, ...)")
    region: str | None = Field(None, description="the bucket's region")
    profile: str | None = Field(None, description="AWS shared-config profile")
    access_key_id_env: str | None = Field(
        None, pattern=ENV_NAME, description="variable holding the access key id"
    )
    secret_access_key_env: str | None = Field(
        None, pattern=ENV_NAME, description="variable holding the secret access key"
    )
    session_token_env: str | None = Field(
        None, pattern=ENV_NAME, description="variable holding a session token"
    )
    gcs_project: str | None = Field(None, description="the Google Cloud project")
    gcs_key_file_env: str | None = Field(
        None, pattern=ENV_NAME, description="variable holding the path of a service-account key"
    )
    allow_private_addresses: bool = Field(
        False, description="let HTTP(S) locations reach loopback and private addresses"
    )

    @model_validator(mode="after")
    def _key_pair(self) -> StorageOptions:
        if (self.access_key_id_env is None) != (self.secret_access_key_env is None):
            raise ValueError(
                "access_key_id_env and secret_access_key_env go together: name both variables, "
                "or neither to use the provider's default credential chain"
            )
        return self

    def storage(self) -> StorageOptions:
        """Just the storage options (a SourceConfig or LakeConfig carries more)."""
        return StorageOptions.model_validate(
            {k: getattr(self, k) for k in StorageOptions.model_fields}
        )


def no_options() -> StorageOptions:
    """Options that set nothing: the provider's defaults."""
    return StorageOptions.model_validate({})
