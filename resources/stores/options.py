"""How to reach a bucket: endpoint, region and the names of credential variables."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class StorageOptions(BaseModel):
    """How to reach a bucket. Secrets never appear here: credentials come from the provider's
    default chain, or from the environment variables these ``*_env`` fields name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, R2, ...)")
    region: str | None = None
    profile: str | None = Field(None, description="AWS shared-config profile")
    access_key_id_env: str | None = Field(None, pattern=ENV_NAME)
    secret_access_key_env: str | None = Field(None, pattern=ENV_NAME)
    session_token_env: str | None = Field(None, pattern=ENV_NAME)
    gcs_project: str | None = None
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
