"""Airflow connections to fsspec storage options, for s3fs, gcsfs and adlfs.

Each supported connection type is read the way Airflow's own providers read
it (the same fields, the same precedence), without importing a provider:

- ``aws``: login/password or ``aws_access_key_id``/``aws_secret_access_key``,
  ``aws_session_token``, ``region_name``, ``endpoint_url`` (or the one in
  ``service_config.s3``), ``profile_name``, ``verify``, ``config_kwargs``;
- ``google_cloud_platform``: ``project``, ``key_path`` or ``keyfile_dict``,
  and the object-storage keys ``gcs.endpoint`` and ``gcs.requester-pays``;
- ``wasb``: ``connection_string``; or the account (login, or the host's
  account URL) with ``shared_access_key``/``account_key``/the password,
  ``sas_token``, or a service principal (``tenant_id`` with the client id as
  login and its secret as password).

What needs a provider's machinery (assuming an AWS role, Secret Manager keys,
impersonation, managed identities named in the connection) is refused with
a message that says how to give the same credentials another way. A
connection without credentials maps to the cloud SDK's default chain
(environment, instance profile, workload identity).

This module imports nothing from Airflow: it reads any object with the
attributes of ``airflow.sdk.Connection``. The options it returns hold
secrets; never log them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from datamove.errors import UsageError

# Which URL protocols each connection type can reach.
PROTOCOLS: Mapping[str, tuple[str, ...]] = {
    "aws": ("s3", "s3a"),
    "google_cloud_platform": ("gs", "gcs"),
    "wasb": ("az", "abfs", "abfss"),
}

_AWS_ROLE_KEYS = ("role_arn", "assume_role_method", "assume_role_kwargs")
_GCP_UNSUPPORTED = ("key_secret_name", "credential_config_file", "impersonation_chain")
_WASB_UNSUPPORTED = ("managed_identity_client_id", "workload_identity_tenant_id")


class ConnectionLike(Protocol):
    """The attributes of ``airflow.sdk.Connection`` this module reads."""

    @property
    def conn_id(self) -> str: ...

    @property
    def conn_type(self) -> str | None: ...

    @property
    def host(self) -> str | None: ...

    @property
    def login(self) -> str | None: ...

    @property
    def password(self) -> str | None: ...

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


def storage_options_from_connection(
    connection: ConnectionLike, protocol: str | None = None
) -> dict[str, Any]:
    """The fsspec storage options that reach a store with ``connection``.

    Args:
        connection: an Airflow connection of type ``aws``,
            ``google_cloud_platform`` or ``wasb``.
        protocol: the protocol of the URL the options are for (``s3``, ``gs``,
            ``az``...); when given, it must be one the connection type reaches.

    Returns:
        Options for ``fsspec.filesystem(protocol, **options)``. They hold
        credentials: never log or store them.

    Raises:
        UsageError: the connection type is not supported, does not reach
            ``protocol``, or uses a field datamove cannot map.
    """
    conn_type = (connection.conn_type or "").replace("-", "_")
    if conn_type not in PROTOCOLS:
        raise UsageError(
            f"connection {connection.conn_id!r}: type {connection.conn_type!r} is not "
            f"supported; use one of {', '.join(PROTOCOLS)}"
        )
    if protocol is not None and protocol not in PROTOCOLS[conn_type]:
        expected = [t for t, protocols in PROTOCOLS.items() if protocol in protocols]
        fix = (
            f"use a connection of type {expected[0]}"
            if expected
            else "leave the connection id unset"
        )
        raise UsageError(
            f"connection {connection.conn_id!r}: a {conn_type} connection cannot "
            f"reach {protocol}:// URLs; {fix} for this URL"
        )
    extra = _Extra(connection, conn_type)
    if conn_type == "aws":
        return _aws_options(connection, extra)
    if conn_type == "google_cloud_platform":
        return _gcp_options(extra)
    return _wasb_options(connection, extra)


class _Extra:
    """A connection's extra fields, plain or with the legacy type prefix."""

    def __init__(self, connection: ConnectionLike, conn_type: str) -> None:
        self.conn_id = connection.conn_id
        self._values = connection.extra_dejson
        self._prefix = f"extra__{conn_type}__"

    def get(self, name: str) -> Any:
        for key in (name, f"{self._prefix}{name}"):
            value = self._values.get(key)
            if value not in (None, ""):
                return value
        return None

    def mapping(self, name: str) -> dict[str, Any]:
        """A field holding a JSON object (or JSON text of one), as a new dict."""
        value = self.get(name)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = None
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise UsageError(
                f"connection {self.conn_id!r}: {name} must be a JSON object, "
                f"got {type(value).__name__}"
            )
        return dict(value)


def _refuse(extra: _Extra, names: tuple[str, ...], fix: str) -> None:
    present = [name for name in names if extra.get(name) is not None]
    if present:
        raise UsageError(
            f"connection {extra.conn_id!r}: {', '.join(present)} cannot be "
            f"mapped to storage options by datamove; {fix}"
        )


def _as_bool(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _aws_options(connection: ConnectionLike, extra: _Extra) -> dict[str, Any]:
    _refuse(
        extra,
        _AWS_ROLE_KEYS,
        "name an AWS config profile that assumes the role (profile_name), or "
        "give the worker the role through its environment",
    )
    options: dict[str, Any] = {}
    key = connection.login or extra.get("aws_access_key_id")
    secret = connection.password or extra.get("aws_secret_access_key")
    if key:
        options["key"] = key
    if secret:
        options["secret"] = secret
    if token := extra.get("aws_session_token"):
        options["token"] = token
    if profile := extra.get("profile_name"):
        options["profile"] = profile

    service = extra.mapping("service_config").get("s3") or {}
    endpoint = service.get("endpoint_url") or extra.get("endpoint_url")
    if endpoint:
        options["endpoint_url"] = endpoint

    client_kwargs: dict[str, Any] = {}
    if region := extra.get("region_name"):
        client_kwargs["region_name"] = region
    verify = extra.get("verify")
    if verify is not None:
        client_kwargs["verify"] = _as_bool(verify)
    if client_kwargs:
        options["client_kwargs"] = client_kwargs

    config_kwargs = extra.mapping("config_kwargs")
    if str(config_kwargs.get("signature_version", "")).lower() == "unsigned":
        del config_kwargs["signature_version"]
        options["anon"] = True
    if config_kwargs:
        options["config_kwargs"] = config_kwargs
    return options


def _gcp_options(extra: _Extra) -> dict[str, Any]:
    _refuse(
        extra,
        _GCP_UNSUPPORTED,
        "use key_path or keyfile_dict, or Application Default Credentials "
        "(GOOGLE_APPLICATION_CREDENTIALS) on the workers",
    )
    options: dict[str, Any] = {}
    if project := extra.get("project"):
        options["project"] = project

    keyfile = extra.get("keyfile_dict")
    if isinstance(keyfile, str):
        try:
            keyfile = json.loads(keyfile)
        except json.JSONDecodeError:
            raise UsageError(
                f"connection {extra.conn_id!r}: keyfile_dict is not valid JSON; "
                "paste the whole service account key file"
            ) from None
    if keyfile:
        options["token"] = keyfile
    elif key_path := extra.get("key_path"):
        options["token"] = key_path

    if endpoint := extra.get("gcs.endpoint"):
        options["endpoint_url"] = endpoint
    requester_pays = extra.get("gcs.requester-pays")
    if requester_pays is not None:
        options["requester_pays"] = _as_bool(requester_pays)
    return options


def _account_from_host(host: str | None) -> str | None:
    """The account name in an account URL (``https://NAME.blob.core...``)."""
    if not host:
        return None
    hostname = urlsplit(host if "://" in host else f"//{host}").hostname or ""
    return hostname.split(".", 1)[0] or None


def _wasb_options(connection: ConnectionLike, extra: _Extra) -> dict[str, Any]:
    if connection_string := extra.get("connection_string"):
        return {"connection_string": connection_string}
    _refuse(
        extra,
        _WASB_UNSUPPORTED,
        "set AZURE_CLIENT_ID (and AZURE_TENANT_ID) on the workers and leave the "
        "connection without credentials",
    )

    tenant = extra.get("tenant_id")
    account = _account_from_host(connection.host) if tenant else None
    if not tenant:
        account = connection.login or _account_from_host(connection.host)
    if not account:
        raise UsageError(
            f"connection {connection.conn_id!r}: no storage account; set the login "
            "to the account name or the host to https://ACCOUNT.blob.core.windows.net"
        )

    options: dict[str, Any] = {"account_name": account}
    if tenant:
        options.update(
            tenant_id=tenant,
            client_id=connection.login,
            client_secret=connection.password,
        )
        return options
    sas_token = extra.get("sas_token")
    if isinstance(sas_token, str) and sas_token.startswith("https"):
        sas_token = urlsplit(sas_token).query
    account_key = (
        extra.get("shared_access_key")
        or extra.get("account_key")
        or (None if sas_token else connection.password)
    )
    if account_key:
        options["account_key"] = account_key
    elif sas_token:
        options["sas_token"] = sas_token
    return options
