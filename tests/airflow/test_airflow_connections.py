"""Airflow connections map to the storage options s3fs, gcsfs and adlfs take."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

pytest.importorskip("airflow")

from airflow.sdk import Connection

from datamove.airflow import storage_options_from_connection
from datamove.errors import UsageError


def _connection(conn_type: str, extra: dict[str, Any] | None = None, **fields: Any):
    return Connection(
        conn_id="test_conn",
        conn_type=conn_type,
        extra=json.dumps(extra) if extra is not None else None,
        **fields,
    )


def test_aws_login_password_and_extras() -> None:
    connection = _connection(
        "aws",
        {
            "aws_session_token": "session-token",
            "region_name": "eu-west-1",
            "endpoint_url": "http://global:1",
            "service_config": {"s3": {"endpoint_url": "http://s3-only:2"}},
            "verify": "false",
            "config_kwargs": {"retries": {"max_attempts": 3}},
        },
        login="AKIAEXAMPLE",
        password="secret-key",
    )
    assert storage_options_from_connection(connection, "s3") == {
        "key": "AKIAEXAMPLE",
        "secret": "secret-key",
        "token": "session-token",
        "endpoint_url": "http://s3-only:2",
        "client_kwargs": {"region_name": "eu-west-1", "verify": False},
        "config_kwargs": {"retries": {"max_attempts": 3}},
    }


def test_aws_keys_in_extra_profile_and_unsigned_access() -> None:
    connection = _connection(
        "aws",
        {
            "aws_access_key_id": "AKIAEXTRA",
            "aws_secret_access_key": "extra-secret",
            "profile_name": "migration",
            "config_kwargs": {"signature_version": "unsigned"},
        },
    )
    assert storage_options_from_connection(connection) == {
        "key": "AKIAEXTRA",
        "secret": "extra-secret",
        "profile": "migration",
        "anon": True,
    }


def test_an_empty_aws_connection_leaves_the_default_credential_chain() -> None:
    connection = Connection.from_uri("aws://", conn_id="aws_default")
    assert storage_options_from_connection(connection, "s3") == {}


def test_aws_connection_from_a_uri_as_airflow_env_vars_spell_it() -> None:
    uri = "aws://AKIAURI:se%2Fcret@/?endpoint_url=http%3A%2F%2F127.0.0.1%3A9000"
    options = storage_options_from_connection(Connection.from_uri(uri, "c"), "s3")
    assert options == {
        "key": "AKIAURI",
        "secret": "se/cret",
        "endpoint_url": "http://127.0.0.1:9000",
    }


def test_aws_nested_fields_given_as_json_text_or_of_the_wrong_kind() -> None:
    text = json.dumps({"s3": {"endpoint_url": "http://s3:1"}})
    connection = _connection("aws", {"service_config": text})
    assert storage_options_from_connection(connection) == {
        "endpoint_url": "http://s3:1"
    }
    wrong = _connection("aws", {"config_kwargs": ["signature_version"]})
    with pytest.raises(UsageError, match="config_kwargs must be a JSON object"):
        storage_options_from_connection(wrong)


def test_assuming_a_role_is_refused_with_the_way_out() -> None:
    connection = _connection("aws", {"role_arn": "arn:aws:iam::1:role/r"})
    with pytest.raises(UsageError, match=r"role_arn.*profile_name"):
        storage_options_from_connection(connection, "s3")


def test_gcp_keyfile_json_project_and_endpoint() -> None:
    keyfile = {"type": "service_account", "project_id": "p", "private_key": "k"}
    connection = _connection(
        "google_cloud_platform",
        {
            "project": "analytics",
            "keyfile_dict": json.dumps(keyfile),
            "gcs.endpoint": "http://127.0.0.1:4443",
            "gcs.requester-pays": "true",
        },
    )
    assert storage_options_from_connection(connection, "gs") == {
        "project": "analytics",
        "token": keyfile,
        "endpoint_url": "http://127.0.0.1:4443",
        "requester_pays": True,
    }


def test_gcp_key_path_with_legacy_prefixed_fields_from_a_uri() -> None:
    uri = (
        "google-cloud-platform://?extra__google_cloud_platform__project=p1"
        "&extra__google_cloud_platform__key_path=%2Fkeys%2Fsa.json"
    )
    connection = Connection.from_uri(uri, conn_id="gcp")
    assert storage_options_from_connection(connection, "gs") == {
        "project": "p1",
        "token": "/keys/sa.json",
    }


def test_gcp_keyfile_that_is_not_json_is_named_without_its_content() -> None:
    connection = _connection("google_cloud_platform", {"keyfile_dict": "{oops secret"})
    with pytest.raises(UsageError, match="keyfile_dict is not valid JSON") as caught:
        storage_options_from_connection(connection, "gs")
    assert "oops secret" not in str(caught.value)


def test_gcp_secret_manager_keys_are_refused() -> None:
    connection = _connection("google_cloud_platform", {"key_secret_name": "sa-key"})
    with pytest.raises(UsageError, match=r"key_secret_name.*key_path"):
        storage_options_from_connection(connection, "gs")


def test_wasb_connection_string_wins() -> None:
    connection = _connection(
        "wasb", {"connection_string": "DefaultEndpointsProtocol=https;..."}, login="a"
    )
    assert storage_options_from_connection(connection, "az") == {
        "connection_string": "DefaultEndpointsProtocol=https;..."
    }


def test_wasb_account_and_key_from_login_and_password() -> None:
    connection = _connection("wasb", login="myaccount", password="account-key")
    assert storage_options_from_connection(connection, "abfs") == {
        "account_name": "myaccount",
        "account_key": "account-key",
    }


def test_wasb_sas_token_with_the_account_from_the_host_url() -> None:
    connection = _connection(
        "wasb",
        {"sas_token": "sv=2024&sig=abc"},
        host="https://myaccount.blob.core.windows.net/",
    )
    assert storage_options_from_connection(connection, "az") == {
        "account_name": "myaccount",
        "sas_token": "sv=2024&sig=abc",
    }


def test_wasb_service_principal() -> None:
    connection = _connection(
        "wasb",
        {"tenant_id": "tenant"},
        host="https://myaccount.blob.core.windows.net",
        login="client-id",
        password="client-secret",
    )
    assert storage_options_from_connection(connection, "az") == {
        "account_name": "myaccount",
        "tenant_id": "tenant",
        "client_id": "client-id",
        "client_secret": "client-secret",
    }


def test_wasb_without_an_account_says_where_to_put_it() -> None:
    with pytest.raises(UsageError, match="set the login to the account name"):
        storage_options_from_connection(_connection("wasb"), "az")


def test_a_connection_that_cannot_reach_the_url_names_the_right_type() -> None:
    connection = _connection("wasb", login="myaccount", password="k")
    with pytest.raises(UsageError, match=r"cannot reach s3:// URLs.*type aws"):
        storage_options_from_connection(connection, "s3")


def test_an_unsupported_connection_type_lists_the_supported_ones() -> None:
    with pytest.raises(UsageError, match="aws, google_cloud_platform, wasb"):
        storage_options_from_connection(_connection("postgres"), "s3")


def test_importing_without_airflow_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['airflow'] = None\n"
        "try:\n"
        "    import datamove.airflow\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "pip install 'datamove[airflow]'" in out.stdout
