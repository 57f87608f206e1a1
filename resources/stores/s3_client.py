"""How an S3 store reaches its bucket: the ``S3Resource`` its storage options describe, the boto3
client built from it (one attempt per request), and where its credentials come from, in words."""

from __future__ import annotations

import os
from typing import Any

from botocore.exceptions import ProfileNotFound
from dagster import EnvVar
from dagster_aws.s3 import S3Resource

from resources.errors import BadCredentials
from resources.stores.options import StorageOptions


def resource_from_options(options: StorageOptions) -> S3Resource:
    """An ``S3Resource`` whose credentials come from the variables the options name, else from
    boto3's default chain (environment, ``AWS_ENDPOINT_URL``, profiles, instance roles)."""

    def env(name: str | None) -> EnvVar | None:
        return EnvVar(name) if name else None

    return S3Resource(
        region_name=options.region,
        endpoint_url=options.endpoint_url,
        profile_name=options.profile,
        aws_access_key_id=env(options.access_key_id_env),
        aws_secret_access_key=env(options.secret_access_key_env),
        aws_session_token=env(options.session_token_env),
    )


def build_client(resource: S3Resource, store: str) -> Any:
    """A boto3 client for ``resource`` that makes a single attempt per request; a credential
    variable that is not set, or an unknown profile, raises BadCredentials naming ``store``."""
    for field in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token"):
        value = getattr(resource, field)
        if isinstance(value, EnvVar) and not os.environ.get(value.env_var_name):
            raise BadCredentials(
                f"{store}: the environment variable {value.env_var_name} "
                f"(the {field.removeprefix('aws_').replace('_', ' ')}) is not set; set it, "
                "or name no credential variables to use boto3's default chain",
                store=store,
            )
    # boto3 makes one attempt (max_attempts counts retries); call_with_retries does the rest.
    single_attempt = resource.model_copy(update={"max_attempts": 0})
    try:
        return single_attempt.process_config_and_initialize().get_client()
    except ProfileNotFound as exc:
        raise BadCredentials(
            f"{store}: the AWS profile {resource.profile_name!r} is not in the AWS "
            "config files; check the profile name or the AWS_CONFIG_FILE variable",
            store=store,
        ) from exc


def describe_credentials(resource: S3Resource) -> str:
    """Where the credentials come from, in words (never the credentials themselves)."""
    key_id = resource.aws_access_key_id
    secret = resource.aws_secret_access_key
    if isinstance(key_id, EnvVar) and isinstance(secret, EnvVar):
        return (
            f"read from the variables {key_id.env_var_name} and {secret.env_var_name} "
            "named in the storage options"
        )
    if key_id:
        return "the access key set on the S3Resource"
    if resource.profile_name:
        return f"the AWS profile {resource.profile_name!r}"
    return (
        "boto3's default chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, then AWS_PROFILE "
        "or ~/.aws/credentials, then the instance role"
    )
