"""A field day, played by a Python client that openapi-python-client generated from the live schema (clients/check).

Type-checked with ``mypy --strict`` (no casts, no ignores) and run against a live server: every call must answer
the expected status and parse into its documented model. Usage: ``python story.py BASE_URL`` with the generated
``job_ops_api_client`` package on ``PYTHONPATH`` and the demo users of ``manage.py seed_demo``.
"""

from __future__ import annotations

import datetime
import sys
import uuid
from typing import TypeVar

from job_ops_api_client import AuthenticatedClient, Client
from job_ops_api_client.api.audit import audit_list
from job_ops_api_client.api.auth import (
    auth_logout_create,
    auth_me_retrieve,
    auth_token_create,
    auth_token_refresh_create,
)
from job_ops_api_client.api.equipment import (
    equipment_create,
    equipment_list,
    equipment_retrieve,
    equipment_usage_retrieve,
)
from job_ops_api_client.api.jobs import (
    jobs_cancel_create,
    jobs_complete_create,
    jobs_create,
    jobs_history_list,
    jobs_list,
    jobs_partial_update,
    jobs_retrieve,
)
from job_ops_api_client.api.notifications import notifications_list
from job_ops_api_client.api.reports import analytics_retrieve, dashboard_technician_list
from job_ops_api_client.api.tasks import (
    jobs_tasks_create,
    jobs_tasks_list,
    jobs_tasks_reorder_create,
    tasks_complete_create,
    tasks_list,
    tasks_start_create,
)
from job_ops_api_client.api.users import users_create, users_list
from job_ops_api_client.models import (
    Analytics,
    DashboardDay,
    EquipmentRead,
    EquipmentTypeEnum,
    EquipmentUsage,
    EquipmentWriteRequest,
    Error,
    JobDetail,
    JobsListOrderingItem,
    JobStatusEnum,
    JobTaskCreateRequest,
    JobTaskRead,
    JobTaskReorderRequest,
    JobWriteRequest,
    Me,
    PaginatedAuditEntryReadList,
    PaginatedEquipmentReadList,
    PaginatedJobReadList,
    PaginatedJobTaskReadList,
    PaginatedNotificationReadList,
    PaginatedUserListItemList,
    PatchedJobWriteRequest,
    PriorityEnum,
    RoleEnum,
    TaskStatusEnum,
    TokenObtainRequest,
    TokenPair,
    TokenRefreshRequest,
    UserCreateRequest,
    UserRead,
    ValidationError,
)
from job_ops_api_client.types import Response

PASSWORD = "jobops-demo-2026"  # seed_demo's DEMO_PASSWORD

P = TypeVar("P")
M = TypeVar("M")
calls = 0


def expect(response: Response[P], status: int, model: type[M], *, exact: bool = True) -> M:
    """The call answered ``status`` and its body parsed into ``model`` (and, when ``exact``, nothing more)."""
    global calls
    calls += 1
    assert response.status_code == status, (response.status_code, response.content[:300])
    parsed = response.parsed
    assert isinstance(parsed, model), (model, parsed)
    assert not exact or not getattr(parsed, "additional_properties", {}), (model, parsed)
    return parsed


def expect_list(response: Response[P], status: int, model: type[M]) -> list[M]:
    global calls
    calls += 1
    assert response.status_code == status, (response.status_code, response.content[:300])
    parsed = response.parsed
    assert isinstance(parsed, list), parsed
    items = [item for item in parsed if isinstance(item, model)]
    assert len(items) == len(parsed), (model, parsed)
    return items


def expect_empty(response: Response[P], status: int) -> None:
    global calls
    calls += 1
    assert response.status_code == status, (response.status_code, response.content[:300])


def log_in(base_url: str, username: str, password: str = PASSWORD) -> tuple[AuthenticatedClient, TokenPair]:
    anonymous = Client(base_url=base_url)
    pair = expect(
        auth_token_create.sync_detailed(client=anonymous, body=TokenObtainRequest(username, password)), 200, TokenPair
    )
    return AuthenticatedClient(base_url=base_url, token=pair.access), pair


def main(base_url: str) -> None:
    today = datetime.datetime.now(datetime.UTC).date()  # the server's TIME_ZONE is UTC unless set
    run = uuid.uuid4().hex[:8]
    anonymous = Client(base_url=base_url)

    # A wrong password: the documented Error, nothing else.
    bad = expect(
        auth_token_create.sync_detailed(client=anonymous, body=TokenObtainRequest("admin", "nope")), 401, Error
    )
    assert bad.code

    # Morning, the office: an admin sets the day up.
    admin, _ = log_in(base_url, "admin")
    me = expect(auth_me_retrieve.sync_detailed(client=admin), 200, Me)
    assert me.role is RoleEnum.ADMIN
    technician = expect(
        users_create.sync_detailed(
            client=admin,
            body=UserCreateRequest(
                username=f"tech-{run}", password=f"Field-day-{run}!", role=RoleEnum.TECHNICIAN, first_name="Pat"
            ),
        ),
        201,
        UserRead,
    )
    ladder = expect(
        equipment_create.sync_detailed(
            client=admin,
            body=EquipmentWriteRequest(name="Ladder 3 m", serial_number=f"LAD-{run}", type_=EquipmentTypeEnum.TOOL),
        ),
        201,
        EquipmentRead,
    )
    found = expect(equipment_list.sync_detailed(client=admin, search=run), 200, PaginatedEquipmentReadList)
    assert [item.id for item in found.results] == [ladder.id]
    assert expect(equipment_retrieve.sync_detailed(ladder.id, client=admin), 200, EquipmentRead).serial_number == (
        f"LAD-{run}"
    )

    # The sales agent books the job and plans its tasks.
    sales, _ = log_in(base_url, "sales1")
    people = expect(users_list.sync_detailed(client=sales, search=run), 200, PaginatedUserListItemList)
    assert [person.id for person in people.results] == [technician.id]
    job = expect(
        jobs_create.sync_detailed(
            client=sales,
            body=JobWriteRequest(
                title=f"Boiler service {run}",
                client_name="Acme Bakery",
                scheduled_date=today,
                priority=PriorityEnum.HIGH,
                assigned_to=technician.id,
            ),
        ),
        201,
        JobDetail,
    )
    assert job.status is JobStatusEnum.PENDING and job.tasks == []
    inspect = expect(
        jobs_tasks_create.sync_detailed(job.id, client=sales, body=JobTaskCreateRequest(title="Inspect")),
        201,
        JobTaskRead,
    )
    repair = expect(
        jobs_tasks_create.sync_detailed(
            job.id, client=sales, body=JobTaskCreateRequest(title="Repair", required_equipment=[ladder.id])
        ),
        201,
        JobTaskRead,
    )
    reordered = expect_list(
        jobs_tasks_reorder_create.sync_detailed(
            job.id, client=sales, body=JobTaskReorderRequest(order=[repair.id, inspect.id])
        ),
        200,
        JobTaskRead,
    )
    assert [task.id for task in reordered] == [repair.id, inspect.id]
    expect(
        jobs_partial_update.sync_detailed(job.id, client=sales, body=PatchedJobWriteRequest(description="Gas smell")),
        200,
        JobDetail,
    )
    spare = expect(
        jobs_create.sync_detailed(
            client=sales, body=JobWriteRequest(title=f"Spare {run}", client_name="Acme Bakery", scheduled_date=today)
        ),
        201,
        JobDetail,
    )
    assert expect(jobs_cancel_create.sync_detailed(spare.id, client=sales), 200, JobDetail).status is (
        JobStatusEnum.CANCELLED
    )
    mine = expect(
        jobs_list.sync_detailed(
            client=sales,
            search=run,
            ordering=[JobsListOrderingItem.PRIORITY_DESC, JobsListOrderingItem.SCHEDULED_DATE],
        ),
        200,
        PaginatedJobReadList,
    )
    assert [row.id for row in mine.results] == [job.id, spare.id]  # high before medium: both keys applied

    # On site: the technician works through the day.
    tech, tech_pair = log_in(base_url, f"tech-{run}", f"Field-day-{run}!")
    days = expect_list(dashboard_technician_list.sync_detailed(client=tech, days=7), 200, DashboardDay)
    actionable = [task.id for day in days for task in day.tasks if task.actionable]
    assert actionable == [repair.id], actionable
    outside = expect(jobs_retrieve.sync_detailed(spare.id, client=tech), 404, Error)
    assert outside.code == "not_found"
    listed = expect_list(jobs_tasks_list.sync_detailed(job.id, client=tech), 200, JobTaskRead)
    assert [task.order for task in listed] == sorted(task.order for task in listed)
    started = expect(tasks_start_create.sync_detailed(repair.id, client=tech), 200, JobTaskRead)
    assert started.status is TaskStatusEnum.IN_PROGRESS and started.started_at is not None
    too_early = expect(jobs_complete_create.sync_detailed(job.id, client=tech), 409, Error)
    assert too_early.code
    expect(tasks_complete_create.sync_detailed(repair.id, client=tech), 200, JobTaskRead)
    expect(tasks_complete_create.sync_detailed(inspect.id, client=tech), 200, JobTaskRead)
    mine_tasks = expect(tasks_list.sync_detailed(client=tech, job=job.id), 200, PaginatedJobTaskReadList)
    assert {task.status for task in mine_tasks.results} == {TaskStatusEnum.COMPLETED}
    done = expect(jobs_complete_create.sync_detailed(job.id, client=tech), 200, JobDetail)
    assert done.status is JobStatusEnum.COMPLETED and done.completed_at is not None
    history = expect(jobs_history_list.sync_detailed(job.id, client=tech), 200, PaginatedAuditEntryReadList)
    assert history.count >= 6
    rotated = expect(
        auth_token_refresh_create.sync_detailed(client=anonymous, body=TokenRefreshRequest(tech_pair.refresh)),
        200,
        TokenPair,
    )
    expect_empty(auth_logout_create.sync_detailed(client=anonymous, body=TokenRefreshRequest(rotated.refresh)), 204)
    revoked = expect(
        auth_token_refresh_create.sync_detailed(client=anonymous, body=TokenRefreshRequest(rotated.refresh)),
        401,
        Error,
    )
    assert revoked.code

    # Evening, the office: what happened today.
    since = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    audit = expect(audit_list.sync_detailed(client=admin, job=job.id, at_after=since), 200, PaginatedAuditEntryReadList)
    assert {"job.created", "job.completed"} <= {entry.action for entry in audit.results}
    expect(notifications_list.sync_detailed(client=admin, job=job.id), 200, PaginatedNotificationReadList)
    usage = expect(equipment_usage_retrieve.sync_detailed(ladder.id, client=admin), 200, EquipmentUsage)
    assert usage.tasks_count == 1
    expect(analytics_retrieve.sync_detailed(client=admin), 200, Analytics)
    refused = expect(users_list.sync_detailed(client=tech), 403, Error)
    assert refused.code
    bad_query = expect(jobs_list.sync_detailed(client=admin, page=0), 400, ValidationError, exact=False)
    assert "page" in bad_query.additional_properties

    print(f"python story: {calls} calls, each with the expected status and parsed into its documented model")


if __name__ == "__main__":
    main(sys.argv[1])
