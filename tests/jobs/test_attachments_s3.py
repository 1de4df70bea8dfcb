"""Attachments on S3: django-storages' S3 backend against moto's standalone server, a real S3 API over HTTP on a
free loopback port (started here; MinIO is not in the package registries this project can install from).

The same paths as the file-system tests, where S3 differs: the object is read back from the bucket (no EXIF GPS),
the signed link answers with a 302 to a presigned URL that serves the bytes, deleting removes the objects from the
bucket, a rolled-back upload leaves none, and the sweep finds a planted orphan.
"""

from __future__ import annotations

import datetime
import io
import os
import socket
import subprocess
import sys
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from jobs.attachments import services as attachment_services
from jobs.attachments import storage
from jobs.models import Attachment
from tests.conftest import require_service
from tests.factories import JobTaskFactory

from . import attachment_files as files

pytestmark = pytest.mark.django_db

BUCKET = "jobops-test-attachments"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # moto accepts any


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint():
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:  # pragma: no cover - moto[server] is in requirements-dev.txt
        require_service("moto[server]", False, "pip install -r requirements-dev.txt")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint, settings):
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **CREDENTIALS)
    client.create_bucket(Bucket=BUCKET)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "access_key": CREDENTIALS["aws_access_key_id"],
                "secret_key": CREDENTIALS["aws_secret_access_key"],
                "addressing_style": "path",
                "default_acl": None,
                "querystring_auth": True,
                "querystring_expire": 60,
                "file_overwrite": False,
            },
        },
    }
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def _keys(client) -> set[str]:
    return {item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def _get(client, key) -> bytes:
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


@pytest.fixture
def task(job):
    return JobTaskFactory(job=job, order=1)


def test_upload_stores_a_clean_private_object_and_serves_it_by_redirect(
    api_client, technician, task, bucket, django_capture_on_commit_callbacks
):
    upload = files.jpeg_with_gps(size=(640, 480))
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(technician).post(
            reverse("task-attachments", args=[task.pk]),
            {"file": SimpleUploadedFile("boiler.jpg", upload, content_type="image/jpeg")},
            format="multipart",
        )
    assert response.status_code == 201, response.content
    attachment = Attachment.objects.get()
    stored = _get(bucket, attachment.key)
    assert not Image.open(io.BytesIO(stored)).getexif()  # read back from the bucket: no EXIF, no GPS
    assert b"PhoneCo" not in stored
    assert _keys(bucket) == {attachment.key, attachment.thumbnail_key}
    assert max(Image.open(io.BytesIO(_get(bucket, attachment.thumbnail_key))).size) == 320
    grants = bucket.get_object_acl(Bucket=BUCKET, Key=attachment.key)["Grants"]
    assert not [g for g in grants if "AllUsers" in str(g.get("Grantee", {}).get("URI", ""))]  # never public-read

    body = api_client(technician).get(reverse("attachment-detail", args=[attachment.pk])).json()
    link = urlsplit(body["url"])
    query = {name: values[0] for name, values in parse_qs(link.query).items()}
    redirect = api_client(None).get(link.path, query)
    assert redirect.status_code == 302
    presigned = redirect["Location"]
    assert presigned.startswith(storage.storage().endpoint_url) and "Signature" in presigned  # type: ignore[attr-defined]
    assert "X-Amz-Expires=60" in presigned or "Expires=" in presigned
    with urllib.request.urlopen(presigned, timeout=10) as fetched:  # noqa: S310 - the test's own loopback server
        assert fetched.read() == stored
        assert fetched.headers["Content-Type"] == "image/jpeg"
    assert api_client(None).get(link.path, {**query, "sig": "f" * 64}).status_code == 403


def test_delete_removes_the_objects_from_the_bucket(
    api_client, technician, task, bucket, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        attachment = attachment_services.attachment_upload(
            actor=technician, task_id=task.pk, upload=io.BytesIO(files.png()), size=100
        )
    assert len(_keys(bucket)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client(technician).delete(reverse("attachment-detail", args=[attachment.pk])).status_code == 204
    assert _keys(bucket) == set()


def test_a_rolled_back_upload_leaves_no_object(technician, task, bucket, monkeypatch):
    def fail(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(attachment_services, "audit_record", fail)
    with pytest.raises(RuntimeError):
        attachment_services.attachment_upload(
            actor=technician, task_id=task.pk, upload=io.BytesIO(files.PDF), size=1, kind="document"
        )
    assert _keys(bucket) == set()


def test_the_sweep_finds_a_planted_orphan(technician, task, bucket):
    kept = attachment_services.attachment_upload(
        actor=technician, task_id=task.pk, upload=io.BytesIO(files.PDF), size=1, kind="document"
    )
    bucket.put_object(Bucket=BUCKET, Key="attachments/0123456789abcdef0123456789abcdef.png", Body=b"planted")
    assert attachment_services.attachments_sweep().orphans_kept == ["attachments/0123456789abcdef0123456789abcdef.png"]
    report = attachment_services.attachments_sweep(now=timezone.now() + datetime.timedelta(days=2))
    assert report.orphans_removed == ["attachments/0123456789abcdef0123456789abcdef.png"] and report.missing == []
    assert _keys(bucket) == {kept.key}


def test_settings_switch_to_s3_when_s3_bucket_is_set():
    """The settings module itself (not a test override): S3_BUCKET and S3_ENDPOINT_URL select the S3 backend."""
    env = {
        **os.environ,
        "S3_BUCKET": "proof",
        "S3_ENDPOINT_URL": "http://minio:9000",
        "S3_ADDRESSING_STYLE": "path",
        "DJANGO_SECRET_KEY": "settings-check-only-0123456789-not-a-secret",
    }
    code = (
        "import json, jobops.settings.base as s; d = s.STORAGES['default']; "
        "print(json.dumps([d['BACKEND'], d['OPTIONS']['bucket_name'], d['OPTIONS']['endpoint_url'], "
        "d['OPTIONS']['default_acl'], d['OPTIONS']['addressing_style']]))"
    )
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == '["storages.backends.s3.S3Storage", "proof", "http://minio:9000", null, "path"]'
