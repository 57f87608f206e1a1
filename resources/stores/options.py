"""How to reach a bucket: endpoint, region and the names of credential variables; and what
keeps secrets out of the config (and out of its error messages)."""

from __future__ import annotations

import re

from dagster import Config
from pydantic import ConfigDict, Field, field_validator, model_validator

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: Config keys that name a secret: their values are never repeated in a message.
SECRET_KEY = re.compile(r"secret|passw|pwd|token|key|credential|private|auth", re.IGNORECASE)
#: The ``*_env`` fields, each naming the variable that holds one credential.
CREDENTIAL_ENV_FIELDS = (
    "access_key_id_env",
    "secret_access_key_env",
    "session_token_env",
    "gcs_key_file_env",
)
CREDENTIALS_IN_URL = (
    "a user name or password inside the URL (USER:PASSWORD@) is refused, and not shown here: "
    "credentials never go in the config; remove them from the URL, put them in environment "
    "variables and name those variables in access_key_id_env and secret_access_key_env "
    "(gcs_key_file_env for GCS)"
)


def is_secret_like(key: str) -> bool:
    """Whether a config key names a secret or the variable holding one (``*_env``)."""
    return key.endswith("_env") or SECRET_KEY.search(key) is not None


def env_field_for(secret_key: str) -> str:
    """The ``*_env`` field to use instead of a secret put in the config under ``secret_key``."""
    field = f"{secret_key.lower().removeprefix('aws_')}_env"
    if field in CREDENTIAL_ENV_FIELDS:
        return field
    return "the matching *_env field (" + ", ".join(CREDENTIAL_ENV_FIELDS) + ")"


def url_authority(url: str) -> str:
    """The ``[user[:password]@]host[:port]`` part of ``scheme://...`` (empty for a path)."""
    _, scheme_sep, rest = url.partition("://")
    return re.split(r"[/?#]", rest, maxsplit=1)[0] if scheme_sep else ""


def names_credentials(url: str) -> bool:
    """Whether ``url`` carries a user or password: ``USER:PASSWORD@`` before its host, or a
    "port" that is no number (a password holding a '/' ends the authority before its '@')."""
    authority = url_authority(url)
    _, colon, port = authority.rpartition("]")[2].rpartition(":")  # past an IPv6 literal
    return "@" in authority or bool(colon and port and not port.isdigit())


def refuse_credentials_in_uri(uri: str | None) -> str | None:
    """``uri`` unchanged; a ValueError that does not repeat them if it carries credentials."""
    if uri is not None and names_credentials(uri):
        raise ValueError(CREDENTIALS_IN_URL)
    return uri


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

    @field_validator("endpoint_url")
    @classmethod
    def _no_credentials_in_endpoint(cls, url: str | None) -> str | None:
        # An endpoint is scheme://host[:port][/path], so an '@' anywhere is a credential's.
        if url is not None and "@" in url:
            raise ValueError(CREDENTIALS_IN_URL)
        return refuse_credentials_in_uri(url)

    def storage(self) -> StorageOptions:
        """Just the storage options (a SourceConfig or LakeConfig carries more)."""
        return StorageOptions.model_validate(
            {k: getattr(self, k) for k in StorageOptions.model_fields}
        )


def no_options() -> StorageOptions:
    """Options that set nothing: the provider's defaults."""
    return StorageOptions.model_validate({})
