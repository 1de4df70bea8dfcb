"""Races of attachments on real PostgreSQL: the job-row lock keeps the signature rule and the frozen rule.

Completing a job that requires a signature races its signature's deletion by the uploader: either the job completes
with its signature still attached (and the delete is then refused, the job being frozen), or the signature goes first
(and the completion is refused). Never both: without the lock, a completed job could end with no signature.
Uploads racing the job's cancellation likewise never land on a cancelled job.
"""

from __future__ import annotations

import io

import pytest
from django.utils import timezone

from audit.models import AuditEntry
from jobs import services
from jobs.attachments import services as attachment_services
from jobs.models import Attachment, Job, JobTask
from tests.factories import JobFactory, JobTaskFactory

from . import attachment_files as files
from .test_races import run_concurrently

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 6


@pytest.fixture(autouse=True)
def _media(settings, tmp_path, require_postgres):
    settings.MEDIA_ROOT = str(tmp_path)


def test_completion_and_signature_deletion_never_both_succeed(sales_agent, technician):
    for _ in range(ROUNDS):
        job = JobFactory(created_by=sales_agent, assigned_to=technician, requires_signature=True)
        now = timezone.now()
        task = JobTaskFactory(job=job, order=1, status=JobTask.Status.COMPLETED, started_at=now, completed_at=now)
        signature = attachment_services.attachment_upload(
            actor=technician, task_id=task.pk, upload=io.BytesIO(files.png()), size=100, kind="signature"
        )
        results = run_concurrently(
            [
                lambda job=job: services.job_complete(actor=technician, job_id=job.pk).status,
                lambda s=signature: attachment_services.attachment_delete(actor=technician, attachment_id=s.pk),
            ]
        )
        completed, deleted = (result[0] == "ok" for result in results)
        assert completed != deleted, results
        job.refresh_from_db()
        if completed:
            assert job.status == Job.Status.COMPLETED and Attachment.objects.filter(pk=signature.pk).exists()
            assert results[1] == ("conflict", "job_frozen")
        else:
            assert job.status == Job.Status.IN_PROGRESS or job.status == Job.Status.PENDING
            assert results[0] == ("conflict", "signature_required")


def test_uploads_racing_a_cancellation_never_land_on_a_cancelled_job(sales_agent, technician):
    for _ in range(ROUNDS):
        job = JobFactory(created_by=sales_agent, assigned_to=technician)
        task = JobTaskFactory(job=job, order=1)
        results = run_concurrently(
            [
                lambda job=job: services.job_cancel(actor=sales_agent, job_id=job.pk).status,
                *(
                    lambda task=task: (
                        attachment_services.attachment_upload(
                            actor=technician, task_id=task.pk, upload=io.BytesIO(files.png()), size=100
                        ).pk
                    )
                    for _ in range(3)
                ),
            ]
        )
        assert results[0][0] == "ok"
        uploaded = [r for r in results[1:] if r[0] == "ok"]
        refused = [r for r in results[1:] if r[0] == "conflict"]
        assert all(r == ("conflict", "job_frozen") for r in refused)
        assert Attachment.objects.filter(job=job).count() == len(uploaded)
        # Serialised on the job row: every upload that succeeded was written before the cancellation.
        entries = AuditEntry.objects.filter(job_id=job.pk)
        cancelled = entries.get(action="job.cancelled").pk
        assert all(pk < cancelled for pk in entries.filter(action="attachment.uploaded").values_list("pk", flat=True))
