"""The Django admin saves jobs and tasks through the services (audited, rules enforced); seed_demo is idempotent."""

import datetime

import pytest
from django.core.management import call_command
from django.test import Client

from audit.models import AuditEntry
from jobs.models import Job, JobTask
from tests.factories import JobFactory, JobTaskFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    user = UserFactory(username="root", role="admin", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client, user


def _inline(prefix, rows, initial=0):
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        for key, value in row.items():
            data[f"{prefix}-{index}-{key}"] = value
    return data


def test_admin_creates_job_with_tasks_through_services(admin_client, technician):
    client, user = admin_client
    data = {
        "title": "Admin job",
        "description": "",
        "client_name": "ACME",
        "priority": "high",
        "scheduled_date": "2031-01-01",
        "assigned_to": technician.pk,
        **_inline("tasks", [{"title": "first", "description": ""}, {"title": "second", "description": ""}]),
        **_inline("attachments", []),
    }
    response = client.post("/admin/jobs/job/add/", data)
    assert response.status_code == 302, response.content[:2000]
    job = Job.objects.get(title="Admin job")
    assert job.created_by == user
    assert list(job.tasks.order_by("order").values_list("title", "order")) == [("first", 1), ("second", 2)]
    entries = AuditEntry.objects.filter(job_id=job.pk)
    assert set(entries.values_list("source", flat=True)) == {"admin"}
    assert sorted(entries.values_list("action", flat=True)) == ["job.created", "task.created", "task.created"]


def test_admin_edit_of_frozen_job_is_refused(admin_client, sales_agent):
    client, _user = admin_client
    job = JobFactory(created_by=sales_agent, status="cancelled", title="Frozen")
    data = {
        "title": "Changed",
        "description": "",
        "client_name": job.client_name,
        "priority": job.priority,
        "scheduled_date": job.scheduled_date.isoformat(),
        "assigned_to": "",
        **_inline("tasks", []),
        **_inline("attachments", []),
    }
    response = client.post(f"/admin/jobs/job/{job.pk}/change/", data, follow=True)
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.title == "Frozen"
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("status", ["completed", "cancelled"])
def test_admin_shows_a_frozen_job_read_only_with_the_reason(admin_client, sales_agent, status):
    client, _user = admin_client
    done = status == "completed"
    now = datetime.datetime.now(datetime.UTC)
    job = JobFactory(created_by=sales_agent, status=status, title="Frozen", completed_at=now if done else None)
    JobTaskFactory(
        job=job,
        order=1,
        title="done already",
        status="completed" if done else "pending",
        started_at=now if done else None,
        completed_at=now if done else None,
    )
    page = client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert f"This job is {status}, so it and its tasks are read-only" in page
    assert f"/api/jobs/{job.pk}/reopen/" in page
    assert 'name="_save"' not in page and 'name="title"' not in page and 'name="tasks-0-title"' not in page
    assert "done already" in page
    open_job = JobFactory(created_by=sales_agent, title="Open")
    page = client.get(f"/admin/jobs/job/{open_job.pk}/change/").content.decode()
    assert 'name="_save"' in page and "so it and its tasks are read-only" not in page


def test_admin_changelist_and_change_page_render(admin_client, sales_agent):
    client, _user = admin_client
    job = JobFactory(created_by=sales_agent)
    JobTaskFactory(job=job, order=2, title="later")
    JobTaskFactory(job=job, order=1, title="sooner")
    assert client.get("/admin/jobs/job/").status_code == 200
    page = client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert page.index("sooner") < page.index("later")


def test_admin_delete_and_cancel_action(admin_client, sales_agent):
    client, _user = admin_client
    keep = JobFactory(created_by=sales_agent)
    gone = JobFactory(created_by=sales_agent)
    response = client.post("/admin/jobs/job/", {"action": "cancel_jobs", "_selected_action": [keep.pk]})
    assert response.status_code == 302
    keep.refresh_from_db()
    assert keep.status == "cancelled"
    response = client.post(f"/admin/jobs/job/{gone.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Job.objects.filter(pk=gone.pk).exists()
    assert AuditEntry.objects.filter(action="job.deleted", object_id=gone.pk, source="admin").count() == 1


def test_admin_shows_attachments_with_thumbnails_and_deletes_through_the_service(
    admin_client, sales_agent, technician, settings, tmp_path, django_capture_on_commit_callbacks
):
    import io

    from jobs.attachments import services as attachment_services
    from jobs.models import Attachment

    from .attachment_files import PDF, jpeg_with_gps

    settings.MEDIA_ROOT = str(tmp_path)
    client, _user = admin_client
    job = JobFactory(created_by=sales_agent, assigned_to=technician)
    task = JobTaskFactory(job=job, order=1)
    with django_capture_on_commit_callbacks(execute=True):
        photo = attachment_services.attachment_upload(
            actor=technician, task_id=task.pk, upload=io.BytesIO(jpeg_with_gps()), size=1000
        )
        document = attachment_services.attachment_upload(
            actor=technician, task_id=task.pk, upload=io.BytesIO(PDF), size=len(PDF), kind="document"
        )
    page = client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert f"/api/attachments/{photo.pk}/thumbnail/?exp=" in page and "<img" in page
    assert f"/api/attachments/{document.pk}/content/?exp=" in page
    data = {
        "title": job.title,
        "description": "",
        "client_name": job.client_name,
        "priority": job.priority,
        "scheduled_date": job.scheduled_date.isoformat(),
        "assigned_to": technician.pk,
        **_inline("tasks", [{"id": task.pk, "job": job.pk, "title": task.title, "description": ""}], initial=1),
        **_inline(
            "attachments",
            [{"id": photo.pk, "job": job.pk, "DELETE": "on"}, {"id": document.pk, "job": job.pk}],
            initial=2,
        ),
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/jobs/job/{job.pk}/change/", data)
    assert response.status_code == 302, response.content[:3000]
    assert list(Attachment.objects.values_list("pk", flat=True)) == [document.pk]
    entry = AuditEntry.objects.get(action="attachment.deleted")
    assert entry.object_id == photo.pk and entry.source == "admin"
    assert not (tmp_path / photo.key).exists() and (tmp_path / document.key).exists()


def test_seed_demo_is_idempotent(capsys):
    call_command("seed_demo", jobs=12)
    first = (Job.objects.count(), JobTask.objects.count(), AuditEntry.objects.count())
    assert first[0] == 12 and first[1] > 12
    out = capsys.readouterr().out
    assert "tech1" in out and "jobops-demo-2026" in out
    call_command("seed_demo", jobs=12)
    assert (Job.objects.count(), JobTask.objects.count(), AuditEntry.objects.count()) == first
    assert set(AuditEntry.objects.values_list("source", flat=True)) == {"command"}
    # every demo job respects the task invariant
    for job in Job.objects.all():
        statuses = list(job.tasks.order_by("order").values_list("status", flat=True))
        done = statuses.count("completed")
        assert statuses[:done] == ["completed"] * done
        if job.status == "completed":
            assert done == len(statuses)
    assert Job.objects.filter(overdue=True, scheduled_date__gte=datetime.date.today()).count() == 0
