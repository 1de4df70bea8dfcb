"""Race tests on real PostgreSQL: threads, one connection each, released together by a barrier.

They assert invariants, never timings: completed tasks form a prefix, at most one task in progress, a completed job
has no open task, and every successful change has exactly one audit entry.
"""

import threading

import pytest
from django.db import connection

from audit.models import AuditEntry
from jobops.exceptions import ApplicationError
from jobs import services
from jobs.models import Job, JobTask
from tests.factories import JobFactory, JobTaskFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 8
ROUNDS = 5


def run_concurrently(functions):
    """Run each function in its own thread (own DB connection), all released at once; return results/errors."""
    barrier = threading.Barrier(len(functions), timeout=20)
    results = [None] * len(functions)

    def worker(index, fn):
        try:
            barrier.wait()
            results[index] = ("ok", fn())
        except ApplicationError as exc:
            results[index] = ("conflict", exc.code)
        except Exception as exc:  # noqa: BLE001 - any other error is a test failure, reported below
            results[index] = ("error", repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, fn)) for i, fn in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung (deadlock?)"
    errors = [r for r in results if r and r[0] == "error"]
    assert not errors, errors
    return results


def assert_task_invariant(job):
    statuses = list(job.tasks.order_by("order").values_list("status", flat=True))
    done = statuses.count("completed")
    assert statuses[:done] == ["completed"] * done, statuses
    rest = statuses[done:]
    assert rest.count("in_progress") <= 1, statuses
    if "in_progress" in rest:
        assert rest[0] == "in_progress", statuses


@pytest.fixture
def people(require_postgres, sales_agent, technician, admin_user):
    return sales_agent, technician, admin_user


def test_concurrent_completions_keep_the_prefix(people):
    sales, tech, _admin = people
    for _ in range(ROUNDS):
        job = JobFactory(created_by=sales, assigned_to=tech)
        tasks = [JobTaskFactory(job=job, order=i) for i in range(1, THREADS + 1)]
        results = run_concurrently(
            [lambda t=t: services.task_complete(actor=tech, task_id=t.pk).order for t in reversed(tasks)]
        )
        assert_task_invariant(job)
        completed = job.tasks.filter(status="completed").count()
        assert completed == sum(1 for r in results if r[0] == "ok") >= 1
        assert AuditEntry.objects.filter(job_id=job.pk, action="task.completed").count() == completed


def test_concurrent_completion_of_the_same_task_happens_once(people):
    sales, tech, _admin = people
    for _ in range(ROUNDS):
        job = JobFactory(created_by=sales, assigned_to=tech)
        task = JobTaskFactory(job=job, order=1)
        results = run_concurrently([lambda: services.task_complete(actor=tech, task_id=task.pk).pk] * THREADS)
        assert sorted(r[0] for r in results) == ["conflict"] * (THREADS - 1) + ["ok"]
        assert AuditEntry.objects.filter(object_id=task.pk, action="task.completed").count() == 1
        assert AuditEntry.objects.filter(job_id=job.pk, action="job.started").count() == 1


def test_complete_next_task_loop_from_many_threads(people):
    """8 threads each repeatedly complete "the next open task": 8 tasks end completed, each exactly once."""
    sales, tech, _admin = people
    job = JobFactory(created_by=sales, assigned_to=tech)
    for i in range(1, THREADS + 1):
        JobTaskFactory(job=job, order=i)

    def complete_next():
        done = []
        for _ in range(THREADS * 3):
            nxt = JobTask.objects.filter(job=job).exclude(status="completed").order_by("order").first()
            if nxt is None:
                break
            try:
                done.append(services.task_complete(actor=tech, task_id=nxt.pk).order)
            except ApplicationError:
                continue
        return done

    results = run_concurrently([complete_next] * THREADS)
    orders = sorted(o for r in results for o in r[1])
    assert orders == list(range(1, THREADS + 1))
    assert AuditEntry.objects.filter(job_id=job.pk, action="task.completed").count() == THREADS
    assert_task_invariant(job)


def test_complete_job_vs_add_task(people):
    sales, tech, _admin = people
    for _ in range(ROUNDS * 2):
        job = JobFactory(created_by=sales, assigned_to=tech)
        task = JobTaskFactory(job=job, order=1)
        services.task_complete(actor=tech, task_id=task.pk)
        results = run_concurrently(
            [
                lambda: services.job_complete(actor=tech, job_id=job.pk).status,
                lambda: services.task_add(actor=sales, job_id=job.pk, data={"title": "late"}).order,
            ]
        )
        job.refresh_from_db()
        open_tasks = job.tasks.exclude(status="completed").count()
        if job.status == Job.Status.COMPLETED:
            assert open_tasks == 0
            assert results[1] == ("conflict", "job_frozen")
        else:
            assert open_tasks == 1
            assert results[0] == ("conflict", "open_tasks")


def test_complete_job_vs_reopen_task(people):
    sales, tech, _admin = people
    for _ in range(ROUNDS * 2):
        job = JobFactory(created_by=sales, assigned_to=tech)
        t1 = JobTaskFactory(job=job, order=1)
        t2 = JobTaskFactory(job=job, order=2)
        services.task_complete(actor=tech, task_id=t1.pk)
        services.task_complete(actor=tech, task_id=t2.pk)
        results = run_concurrently(
            [
                lambda: services.job_complete(actor=tech, job_id=job.pk).status,
                lambda: services.task_reopen(actor=tech, task_id=t2.pk).status,
            ]
        )
        job.refresh_from_db()
        open_tasks = job.tasks.exclude(status="completed").count()
        assert [r[0] for r in results].count("ok") == 1
        if job.status == Job.Status.COMPLETED:
            assert open_tasks == 0
        else:
            assert open_tasks == 1
        assert_task_invariant(job)


def test_reorder_vs_start(people):
    """Reordering while the technician starts a task: whichever wins, the started task stays at the head."""
    sales, tech, _admin = people
    for _ in range(ROUNDS * 2):
        job = JobFactory(created_by=sales, assigned_to=tech)
        t1, t2, t3 = (JobTaskFactory(job=job, order=i) for i in (1, 2, 3))
        run_concurrently(
            [
                lambda: services.task_start(actor=tech, task_id=t1.pk).pk,
                lambda: services.tasks_reorder(actor=sales, job_id=job.pk, task_ids=[t2.pk, t1.pk, t3.pk]) and 1,
            ]
        )
        assert_task_invariant(job)


def test_lock_is_held_during_a_service(people):
    """Deterministic check: while one transaction holds the job lock, another cannot take it (NOWAIT fails)."""
    from django.db import DatabaseError, transaction

    sales, tech, _admin = people
    job = JobFactory(created_by=sales, assigned_to=tech)
    other = connection.copy()
    try:
        with transaction.atomic():
            services._lock_job(job.pk)
            with other.cursor() as cursor:
                cursor.execute("BEGIN")
                with pytest.raises(DatabaseError):
                    cursor.execute("SELECT id FROM jobs_job WHERE id = %s FOR UPDATE NOWAIT", [job.pk])
                cursor.execute("ROLLBACK")
    finally:
        other.close()
