"""How a GCS store reaches its bucket: the endpoint google-cloud-storage talks to, the key file a
storage option names, the client (with an HTTP session sized for a thread pool and no retries of
its own), and where its credentials come from, in words."""

from __future__ import annotations

import os
from typing import Any

import requests
from dagster_gcp.gcs import GCSResource
from google.cloud import storage

from resources.errors import BadCredentials

#: Connections kept per host, so a thread pool of this size never queues on the HTTP session.
HTTP_POOL_SIZE = 32
DEFAULT_ENDPOINT = "https://storage.googleapis.com"
EMULATOR_VARIABLE = "STORAGE_EMULATOR_HOST"


def endpoint() -> str:
    """The endpoint google-cloud-storage talks to, as it picks it (the emulator variable first)."""
    return (
        os.environ.get(EMULATOR_VARIABLE)
        or os.environ.get("API_ENDPOINT_OVERRIDE")
        or DEFAULT_ENDPOINT
    )


def key_file_from_env(variable: str | None, where: str) -> str | None:
    """The service-account key file the environment variable ``variable`` names (None without a
    variable: application default credentials apply); BadCredentials, naming ``where``, if the
    variable is not set or names no file."""
    if variable is None:
        return None
    key_file = os.environ.get(variable) or None
    if key_file is None:
        raise BadCredentials(
            f"{where}: environment variable {variable} (gcs_key_file_env) is not set; "
            "set it to the path of a service-account key file, or remove gcs_key_file_env "
            "to use application default credentials",
            store=where,
        )
    if not os.path.isfile(key_file):
        raise BadCredentials(
            f"{where}: environment variable {variable} (gcs_key_file_env) names "
            f"{key_file!r}, which is not a file; point it at a service-account key file",
            store=where,
        )
    return key_file


def describe_credentials(key_file: str | None, key_file_env: str | None) -> str:
    """Where credentials come from, in words (never the secret itself)."""
    if key_file is not None:
        named = f" named by ${key_file_env}" if key_file_env else ""
        return f"the service-account key file {key_file!r}{named} (gcs_key_file_env)"
    if os.environ.get(EMULATOR_VARIABLE):
        return f"anonymous credentials for the emulator at ${EMULATOR_VARIABLE}"
    return (
        "application default credentials (GOOGLE_APPLICATION_CREDENTIALS, "
        "`gcloud auth application-default login` or the metadata server); "
        "set gcs_key_file_env to use a service-account key file instead"
    )


def build_client(
    resource: GCSResource, key_file: str | None, key_file_env: str | None, store: str
) -> Any:
    """A google-cloud-storage client: from ``resource`` (application default credentials, or
    anonymous for an emulator), or from ``key_file``, which BadCredentials names if it cannot be
    read as a service-account key."""
    if key_file is None:
        client = resource.get_client()
    else:
        credentials = describe_credentials(key_file, key_file_env)
        kwargs = {} if resource.project is None else {"project": resource.project}
        try:
            client = storage.Client.from_service_account_json(key_file, **kwargs)
        except OSError as exc:
            raise BadCredentials(
                f"{store}: cannot read {credentials}: {type(exc).__name__}",
                store=store,
            ) from exc
        except (ValueError, KeyError) as exc:  # not JSON, or not a service-account key
            raise BadCredentials(
                f"{store}: {credentials} is not a valid service-account key "
                f"({type(exc).__name__}); download a JSON key for the service account",
                store=store,
            ) from exc
    # Make the HTTP session now, once, rather than racing to make it from pool threads.
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=HTTP_POOL_SIZE, max_retries=0
    )
    client._http.mount("https://", adapter)
    client._http.mount("http://", adapter)
    return client
