"""Server-side encryption flags reach every object and verify checks they stay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import datamove
from datamove.stores import encryption_for
from tests.core.helpers import write_csv
from tests.stores.conftest import Bucket

pytestmark = pytest.mark.cloud
KEY_ID = "arn:aws:kms:us-east-1:123456789012:key/datamove-test"


def test_sse_kms_on_every_object_and_checked_by_verify(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    for index in range(3):
        # Files of more than half a shard each: one unit and shard each.
        write_csv(tmp_path / "src" / f"f{index}.csv", 4_000, seed=index)
    options = json.dumps(dict(s3_bucket.server.storage_options))
    root = f"{s3_bucket.name}/lake"
    result = subprocess.run(
        [sys.executable, "-m", "datamove.cli", "sync", str(tmp_path / "src"),
         f"s3://{root}", "--dest-options", options, "--workers", "1",
         "--shard-size", "64KiB",
         "--sse", "aws:kms", "--sse-kms-key-id", KEY_ID],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    s3_bucket.fs.invalidate_cache()
    shards = [p for p in s3_bucket.fs.find(root) if p.endswith(".parquet")]
    assert len(shards) >= 3
    for path in shards:
        key = path.split("/", 1)[1]
        head = s3_bucket.fs.call_s3("head_object", Bucket=s3_bucket.name, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert KEY_ID in head["SSEKMSKeyId"]
    dest_options = json.loads(options)
    assert datamove.verify(f"s3://{root}", dest_options=dest_options).ok
    # An object rewritten without encryption is named by verify.
    victim = shards[0]
    s3_bucket.fs.pipe_file(victim, s3_bucket.fs.cat_file(victim))
    checked = datamove.verify(f"s3://{root}", dest_options=dest_options)
    assert not checked.ok
    assert any("ServerSideEncryption" in p for p in checked.problems), checked.problems


def test_flags_that_do_not_fit_the_store_are_refused() -> None:
    with pytest.raises(datamove.UsageError, match="s3://"):
        encryption_for("gs", sse="AES256")
    with pytest.raises(datamove.UsageError, match="aws:kms"):
        encryption_for("s3", sse="AES256", kms_key_id="k")
    assert encryption_for("az", azure_scope="scope") == (("encryption_scope", "scope"),)
    assert encryption_for("gs", gcs_kms_key="projects/p/keys/k") == (
        ("kms_key_name", "projects/p/keys/k"),
    )


@pytest.mark.parametrize(
    ("fixture", "encryption"),
    [
        ("azure_container", (("encryption_scope", "scope1"),)),
        (
            "gcs_bucket",
            (("kms_key_name", "projects/p/locations/l/keyRings/r/cryptoKeys/k"),),
        ),
    ],
)
def test_emulators_accept_but_drop_encryption_and_verify_says_so(
    request: pytest.FixtureRequest,
    fixture: str,
    encryption: tuple[tuple[str, str], ...],
    tmp_path: Path,
) -> None:
    # Azurite and gcp-storage-emulator accept the encryption arguments but
    # neither keeps nor reports them (real Azure and GCS do): the upload
    # succeeds, and verify names every object as lacking the encryption.
    bucket: Bucket = request.getfixturevalue(fixture)
    write_csv(tmp_path / "src" / "a.csv", 100)
    url = f"{bucket.server.protocol}://{bucket.name}/lake"
    options = dict(bucket.server.storage_options)
    report = datamove.sync(str(tmp_path / "src"), url, dest_options=options,
                           workers=1, encryption=encryption)  # fmt: skip
    assert report.status == "ok"
    checked = datamove.verify(url, dest_options=options)
    assert not checked.ok
    assert all(encryption[0][0] in problem for problem in checked.problems)
