"""Attachments on the file-system backend: real bytes through the API (types sniffed, images cleaned, limits),
roles and scope, delete rules, signed links, rollback and cleanup, the sweep, the signature rule and the feed."""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from audit.models import AuditEntry
from jobs import feed
from jobs.attachments import services as attachment_services
from jobs.attachments import storage
from jobs.models import Attachment, Job, JobTask
from tests.factories import JobFactory, JobTaskFactory

from . import attachment_files as files

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    yield


@pytest.fixture
def task(job):
    return JobTaskFactory(job=job, order=1)


def _upload(client, task_id, data, name="photo.jpg", kind=None, caption=None, content_type="image/jpeg"):
    body = {"file": SimpleUploadedFile(name, data, content_type=content_type)}
    if kind:
        body["kind"] = kind
    if caption is not None:
        body["caption"] = caption
    return client.post(reverse("task-attachments", args=[task_id]), body, format="multipart")


def _stored(key: str) -> bytes:
    with storages["default"].open(key, "rb") as handle:
        return handle.read()


def _objects() -> set[str]:
    return set(storage.list_objects())


# --- content -------------------------------------------------------------------------------------------------------


def test_jpeg_with_gps_is_stored_without_metadata(api_client, technician, task, django_capture_on_commit_callbacks):
    upload = files.jpeg_with_gps()
    assert Image.open(io.BytesIO(upload)).getexif().get_ifd(0x8825)  # the upload carries a GPS position
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(api_client(technician), task.pk, upload, caption="Boiler, after")
    assert response.status_code == 201, response.content
    body = response.json()
    attachment = Attachment.objects.get(pk=body["id"])
    stored = _stored(attachment.key)
    image = Image.open(io.BytesIO(stored))
    assert image.format == "JPEG"
    assert not image.getexif()  # no EXIF at all: no GPS, no camera make, no orientation
    assert b"PhoneCo" not in stored and b"Exif" not in stored
    assert image.size == (48, 64)  # orientation 6 applied to the pixels before the EXIF went
    assert {key: body[key] for key in ("task", "job", "kind", "caption", "content_type", "width", "height")} == {
        "task": task.pk,
        "job": task.job_id,
        "kind": "photo",
        "caption": "Boiler, after",
        "content_type": "image/jpeg",
        "width": 48,
        "height": 64,
    }
    assert body["size"] == len(stored) and body["sha256"] == hashlib.sha256(stored).hexdigest()
    assert body["uploaded_by"] == technician.pk
    assert "/content/?exp=" in body["url"]
    assert attachment.key.startswith("attachments/") and task.job.client_name not in attachment.key
    entry = AuditEntry.objects.get(action="attachment.uploaded")
    assert entry.object_id == attachment.pk and entry.job_id == task.job_id and entry.actor_id == technician.pk


def test_thumbnail_is_made_after_commit_once(api_client, technician, task, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(api_client(technician), task.pk, files.jpeg_with_gps(size=(800, 600)))
    attachment = Attachment.objects.get(pk=response.json()["id"])
    assert attachment.thumbnail_key
    thumb = Image.open(io.BytesIO(_stored(attachment.thumbnail_key)))
    assert max(thumb.size) == 320
    before = _objects()
    # A redelivered task makes nothing twice.
    assert attachment_services.attachment_make_thumbnail(attachment_id=attachment.pk) == "exists"
    Attachment.objects.filter(pk=attachment.pk).update(thumbnail_key="")
    assert attachment_services.attachment_make_thumbnail(attachment_id=attachment.pk) == "made"
    assert _objects() == before
    got = api_client(technician).get(reverse("attachment-detail", args=[attachment.pk])).json()
    assert got["thumbnail_url"] and "/thumbnail/?exp=" in got["thumbnail_url"]


def test_png_text_chunks_and_exif_are_not_stored(admin_user, task):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "client at 12 Rue Secret")
    exif = Image.Exif()
    exif[0x010F] = "PhoneCo"
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(buffer, format="PNG", pnginfo=info, exif=exif)
    upload = buffer.getvalue()
    assert b"Rue Secret" in upload and b"PhoneCo" in upload
    attachment = attachment_services.attachment_upload(
        actor=admin_user, task_id=task.pk, upload=io.BytesIO(upload), size=len(upload), kind="document"
    )
    stored = _stored(attachment.key)
    assert b"Rue Secret" not in stored and b"PhoneCo" not in stored
    assert Image.open(io.BytesIO(stored)).getpixel((5, 5)) == (1, 2, 3)


@pytest.mark.parametrize(
    ("data", "name", "kind", "content_type"),
    [
        (files.png(), "sig.png", "signature", "image/png"),
        (files.webp(), "p.webp", "photo", "image/webp"),
        (files.PDF, "report.pdf", "document", "application/pdf"),
        (files.png(mode="L"), "scan.png", "document", "image/png"),
    ],
)
def test_accepted_types(api_client, admin_user, task, data, name, kind, content_type):
    response = _upload(api_client(admin_user), task.pk, data, name=name, kind=kind, content_type="text/plain")
    assert response.status_code == 201, response.content
    assert response.json()["content_type"] == content_type
    if content_type == "application/pdf":
        assert _stored(Attachment.objects.get().key) == files.PDF
        assert response.json()["width"] is None


@pytest.mark.parametrize(
    ("data", "name", "kind"),
    [
        (files.PDF, "photo.jpg", "photo"),  # a photo must be an image, whatever its name says
        (files.HTML, "photo.png", "photo"),
        (files.HTML, "page.pdf", "document"),
        (files.jpeg_with_gps(), "sig.png", "signature"),  # a signature is a PNG
        (b"GIF89a" + b"\x00" * 40, "anim.gif", "document"),
    ],
)
def test_unsupported_types_are_415(api_client, admin_user, task, data, name, kind):
    response = _upload(api_client(admin_user), task.pk, data, name=name, kind=kind)
    assert response.status_code == 415, response.content
    assert response.json()["code"] == "unsupported_media_type"
    assert not Attachment.objects.exists() and not _objects()


@pytest.mark.parametrize("data", [files.truncated_jpeg(), files.png_bomb(), b"\xff\xd8\xff" + b"\x00" * 100])
def test_broken_images_and_bombs_are_400(api_client, admin_user, task, data):
    response = _upload(api_client(admin_user), task.pk, data)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_image"
    assert not Attachment.objects.exists() and not _objects()


def test_over_the_limit_is_413(api_client, admin_user, task, settings):
    settings.ATTACHMENT_MAX_BYTES = 1000
    response = _upload(api_client(admin_user), task.pk, files.PDF + b"%" * 2000, name="big.pdf", kind="document")
    assert response.status_code == 413
    big = _upload(api_client(admin_user), task.pk, files.PDF + b"%" * 200_000, name="big.pdf", kind="document")
    assert big.status_code == 413 and big.json()["code"] == "request_too_large"
    assert not Attachment.objects.exists()


def test_bad_form_input_is_400(api_client, admin_user, task):
    client = api_client(admin_user)
    url = reverse("task-attachments", args=[task.pk])
    assert client.post(url, {"kind": "photo"}, format="multipart").status_code == 400
    assert _upload(client, task.pk, files.png(), kind="selfie").status_code == 400
    assert _upload(client, task.pk, files.png(), caption="x" * 201).status_code == 400
    assert _upload(client, task.pk, b"").status_code == 400
    assert client.post(url, {"kind": "photo"}, format="json").status_code == 415  # not multipart


# --- roles and scope -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("admin_user", 201),
        ("technician", 201),  # the job's assigned technician
        ("sales_agent", 201),  # the job's creator
        ("other_technician", 404),
        ("other_sales_agent", 404),
    ],
)
def test_upload_and_read_by_role(request, api_client, task, who, expected):
    user = request.getfixturevalue(who)
    client = api_client(user)
    assert _upload(client, task.pk, files.png()).status_code == expected
    mine = Attachment.objects.first() or attachment_services.attachment_upload(
        actor=request.getfixturevalue("admin_user"), task_id=task.pk, upload=io.BytesIO(files.png()), size=100
    )
    visible = 200 if expected == 201 else 404
    assert client.get(reverse("task-attachments", args=[task.pk])).status_code == visible
    assert client.get(reverse("job-attachments", args=[task.job_id])).status_code == visible
    assert client.get(reverse("attachment-detail", args=[mine.pk])).status_code == visible
    assert client.delete(reverse("attachment-detail", args=[mine.pk])).status_code in (
        (204, 403) if visible == 200 else (404,)
    )


def test_anonymous_is_401(api_client, task):
    assert _upload(api_client(None), task.pk, files.png()).status_code == 401
    assert api_client(None).get(reverse("task-attachments", args=[task.pk])).status_code == 401


def test_frozen_job_is_409(api_client, technician, job, task):
    Job.objects.filter(pk=job.pk).update(status=Job.Status.CANCELLED)
    response = _upload(api_client(technician), task.pk, files.png())
    assert response.status_code == 409 and response.json()["code"] == "job_frozen"


def test_lists_are_scoped_ordered_and_constant_in_queries(
    api_client, admin_user, technician, job, task, django_assert_max_num_queries
):
    other_task = JobTaskFactory(job=job, order=2)
    for target in (task, task, other_task):
        attachment_services.attachment_upload(
            actor=technician, task_id=target.pk, upload=io.BytesIO(files.png()), size=100
        )
    unrelated = JobTaskFactory(job=JobFactory(), order=1)
    attachment_services.attachment_upload(
        actor=admin_user, task_id=unrelated.pk, upload=io.BytesIO(files.png()), size=100
    )
    client = api_client(technician)
    task_list = client.get(reverse("task-attachments", args=[task.pk])).json()
    assert [row["task"] for row in task_list["results"]] == [task.pk, task.pk]
    job_list = client.get(reverse("job-attachments", args=[job.pk])).json()
    assert job_list["count"] == 3
    for _ in range(10):
        attachment_services.attachment_upload(
            actor=technician, task_id=task.pk, upload=io.BytesIO(files.png()), size=100
        )
    with django_assert_max_num_queries(6):
        response = client.get(reverse("job-attachments", args=[job.pk]), {"page_size": 100})
    assert response.json()["count"] == 13


# --- delete --------------------------------------------------------------------------------------------------------


def _attach(actor, task, data=None, **kwargs):
    data = data or files.png()
    return attachment_services.attachment_upload(
        actor=actor, task_id=task.pk, upload=io.BytesIO(data), size=len(data), **kwargs
    )


def test_uploader_deletes_within_24h_then_objects_go(api_client, technician, task, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        attachment = _attach(technician, task, files.jpeg_with_gps())
    attachment.refresh_from_db()
    keys = {attachment.key, attachment.thumbnail_key}
    assert keys <= _objects() and all(keys)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(technician).delete(reverse("attachment-detail", args=[attachment.pk]))
    assert response.status_code == 204
    assert not Attachment.objects.exists() and not (keys & _objects())
    assert AuditEntry.objects.filter(action="attachment.deleted", object_id=attachment.pk).count() == 1


def test_delete_rules(api_client, admin_user, technician, sales_agent, job, task):
    attachment = _attach(technician, task)
    url = reverse("attachment-detail", args=[attachment.pk])
    assert api_client(sales_agent).delete(url).status_code == 403  # in scope, not the uploader
    with time_machine.travel(timezone.now() + datetime.timedelta(hours=25)):
        assert api_client(technician).delete(url).status_code == 403  # past the uploader's 24 hours
    Job.objects.filter(pk=job.pk).update(status=Job.Status.CANCELLED)
    frozen = api_client(technician).delete(url)
    assert frozen.status_code == 409 and frozen.json()["code"] == "job_frozen"
    assert api_client(admin_user).delete(url).status_code == 204  # an admin, at any time
    assert api_client(admin_user).delete(url).status_code == 404


def test_job_delete_removes_every_object(admin_user, technician, job, task, django_capture_on_commit_callbacks):
    second = JobTaskFactory(job=job, order=2)
    with django_capture_on_commit_callbacks(execute=True):
        _attach(technician, task, files.jpeg_with_gps())
        _attach(technician, second, files.PDF, kind="document")
    kept = _attach(admin_user, JobTaskFactory(job=JobFactory(), order=1))
    assert len(_objects()) == 4  # two originals, one thumbnail (a PDF has none), the other job's photo
    with django_capture_on_commit_callbacks(execute=True):
        from jobs import services

        services.job_delete(actor=admin_user, job_id=job.pk)
    assert _objects() == {kept.key}
    assert list(Attachment.objects.values_list("pk", flat=True)) == [kept.pk]


def test_task_delete_removes_its_objects(sales_agent, technician, job, task, django_capture_on_commit_callbacks):
    from jobs import services

    attachment = _attach(technician, task)
    with django_capture_on_commit_callbacks(execute=True):
        services.task_delete(actor=sales_agent, task_id=task.pk)
    assert attachment.key not in _objects() and not Attachment.objects.exists()


def test_a_rolled_back_upload_leaves_no_object(technician, task, monkeypatch):
    def fail(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(attachment_services, "audit_record", fail)
    with pytest.raises(RuntimeError):
        _attach(technician, task)
    assert not Attachment.objects.exists()
    assert not _objects()


# --- signed links --------------------------------------------------------------------------------------------------


def _link(body, key="url"):
    parts = urlsplit(body[key])
    return parts.path, {name: values[0] for name, values in parse_qs(parts.query).items()}


def test_signed_links(api_client, technician, task, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = _attach(technician, task, files.jpeg_with_gps())
        second = _attach(technician, task)
    body = api_client(technician).get(reverse("attachment-detail", args=[first.pk])).json()
    anonymous = api_client(None)
    path, query = _link(body)
    ok = anonymous.get(path, query)
    assert ok.status_code == 200
    assert b"".join(ok.streaming_content) == _stored(first.key)
    assert ok["Content-Type"] == "image/jpeg"
    thumb_path, thumb_query = _link(body, "thumbnail_url")
    thumb = anonymous.get(thumb_path, thumb_query)
    assert thumb.status_code == 200
    assert b"".join(thumb.streaming_content) == _stored(Attachment.objects.get(pk=first.pk).thumbnail_key)
    # tampered: another expiry, another signature, the content link's signature on the thumbnail
    assert anonymous.get(path, {**query, "exp": str(int(query["exp"]) + 60)}).status_code == 403
    assert anonymous.get(path, {**query, "sig": "0" * 64}).status_code == 403
    assert anonymous.get(thumb_path, query).status_code == 403
    assert anonymous.get(path, {}).status_code == 403
    # another attachment's signature
    other = api_client(technician).get(reverse("attachment-detail", args=[second.pk])).json()
    _other_path, other_query = _link(other)
    assert anonymous.get(path, other_query).status_code == 403
    # expired
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=7)):
        assert anonymous.get(path, query).status_code == 403
    # deleted: 404 at once, whatever the link says
    Attachment.objects.filter(pk=first.pk).delete()
    assert anonymous.get(path, query).status_code == 404


# --- the sweep -----------------------------------------------------------------------------------------------------


def test_sweep_removes_old_orphans_and_reports_missing_objects(technician, task):
    kept = _attach(technician, task)
    lost = _attach(technician, task)
    storages["default"].delete(lost.key)
    fresh = storage.put(storage.new_key("png"), io.BytesIO(b"fresh"))
    orphan = storage.put(storage.new_key("png"), io.BytesIO(b"planted"))
    old = time.time() - 2 * 86400
    os.utime(storages["default"].path(orphan), (old, old))
    report = attachment_services.attachments_sweep(now=timezone.now() + datetime.timedelta(seconds=1))
    assert report.orphans_removed == [orphan]
    assert report.orphans_kept == [fresh]
    assert report.missing == [lost.pk]
    assert _objects() == {kept.key, fresh}
    again = attachment_services.attachments_sweep()
    assert again.orphans_removed == [] and again.missing == [lost.pk]


# --- the signature rule --------------------------------------------------------------------------------------------


def test_requires_signature(api_client, sales_agent, technician, job, task):
    creator = api_client(sales_agent)
    response = creator.patch(reverse("job-detail", args=[job.pk]), {"requires_signature": True}, format="json")
    assert response.status_code == 200 and response.json()["requires_signature"] is True
    JobTask.objects.filter(pk=task.pk).update(
        status=JobTask.Status.COMPLETED, started_at=timezone.now(), completed_at=timezone.now()
    )
    worker = api_client(technician)
    complete = reverse("job-complete", args=[job.pk])
    refused = worker.post(complete)
    assert refused.status_code == 409 and refused.json()["code"] == "signature_required"
    _attach(technician, task, files.jpeg_with_gps())  # a photo is not a signature
    assert worker.post(complete).status_code == 409
    _attach(technician, task, files.png(), kind="signature")
    assert worker.post(complete).status_code == 200
    assert (
        technician.pk
        and api_client(technician)
        .patch(reverse("job-detail", args=[job.pk]), {"requires_signature": False}, format="json")
        .status_code
        == 403
    )


def test_requires_signature_defaults_false(api_client, admin_user, job):
    assert api_client(admin_user).get(reverse("job-detail", args=[job.pk])).json()["requires_signature"] is False


# --- the change feed -----------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the feed reads committed transactions only (jobs.feed)
def test_feed_upserts_and_removes_attachments(api_client, technician, other_technician, admin_user, task):
    start = feed.current_cursor()
    attachment = _attach(technician, task)
    page = feed.read_changes(user=technician, after=start)
    change = next(c for c in page.changes if c["object_type"] == "attachment")
    assert change["type"] == "attachment.upserted" and change["object_id"] == attachment.pk
    assert change["data"]["sha256"] == attachment.sha256 and change["job"] == task.job_id
    assert not [c for c in feed.read_changes(user=other_technician, after=start).changes]
    middle = page.cursor
    attachment_services.attachment_delete(actor=admin_user, attachment_id=attachment.pk)
    removed = [c for c in feed.read_changes(user=technician, after=middle).changes if c["object_type"] == "attachment"]
    assert removed == [
        {**removed[0], "type": "attachment.removed", "object_id": attachment.pk, "data": None},
    ]


# --- the task adapters ---------------------------------------------------------------------------------------------


def test_task_adapters(technician, task):
    from tasks import attachments as attachment_tasks

    photo = _attach(technician, task, files.jpeg_with_gps())
    document = _attach(technician, task, files.PDF, kind="document")
    assert attachment_tasks.make_attachment_thumbnail(document.pk) == "not an image"
    assert attachment_tasks.make_attachment_thumbnail(10**9) == "gone"
    assert attachment_tasks.make_attachment_thumbnail(photo.pk) in ("made", "exists")
    assert attachment_tasks.remove_attachment_objects([document.key]) == 1
    assert attachment_tasks.sweep_attachment_objects() == {
        "objects": 2,
        "orphans_removed": 0,
        "orphans_kept": 0,
        "missing": 1,
    }


def test_removal_after_a_rollback_that_fails_is_left_to_the_sweep(technician, task, monkeypatch, caplog):
    def broken(keys):
        raise OSError("disk gone")

    monkeypatch.setattr(attachment_services, "audit_record", lambda **kwargs: (_ for _ in ()).throw(RuntimeError()))
    monkeypatch.setattr(storage, "remove", broken)
    with pytest.raises(RuntimeError):
        _attach(technician, task)
    assert len(_objects()) == 1  # left for the sweep, and logged
    assert "not removed after a rollback" in caplog.text


def test_thumbnails_never_made_are_queued_again(technician, task):
    from tasks import attachments as attachment_tasks

    photo = _attach(technician, task, files.jpeg_with_gps())  # no commit here: the thumbnail task never ran
    _attach(technician, task, files.PDF, kind="document")
    assert attachment_services.attachments_requeue_thumbnails() == []  # too recent: its task may still be queued
    later = timezone.now() + datetime.timedelta(minutes=6)
    assert attachment_services.attachments_requeue_thumbnails(now=later) == [photo.pk]  # eager: made at once
    photo.refresh_from_db()
    assert photo.thumbnail_key in _objects()
    with time_machine.travel(later):
        assert attachment_tasks.requeue_attachment_thumbnails() == 0
