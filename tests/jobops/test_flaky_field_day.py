"""A field day over a flaky network: the client loses the response of 30% of its writes and retries each with the
same ``Idempotency-Key``; the day ends with exactly the effects of a clean run (state, audit entries, emails)."""

from __future__ import annotations

import random
import re
import uuid
from typing import Any

import pytest

from audit.models import AuditEntry
from jobs.models import Job
from notifications.models import Notification
from tests.conftest import client_for
from tests.factories import EquipmentFactory

DROP_RATE = 0.3


class FlakyClient:
    """Sends each write with a fresh key; a "lost" response (the server did the work, the phone never heard back)
    is retried with the same key until one arrives."""

    def __init__(self, user: Any, rng: random.Random | None) -> None:
        self.client = client_for(user)
        self.rng = rng
        self.sent = 0
        self.lost = 0

    def write(self, method: str, path: str, body: Any = None) -> Any:
        key = str(uuid.uuid4())
        while True:
            self.sent += 1
            response = getattr(self.client, method)(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
            if self.rng is not None and self.rng.random() < DROP_RATE:
                self.lost += 1
                continue  # the response never reached the phone: retry, same key
            return response


def field_day(sales: FlakyClient, tech: FlakyClient, admin: FlakyClient, technician: Any, drill: Any) -> list[int]:
    """A day's writes; returns the status of each logical write (as the client finally saw it)."""
    seen = []

    def ok(response: Any) -> Any:
        seen.append(response.status_code)
        return response.json() if response.content else None

    day = "2030-06-01"
    a = ok(sales.write("post", "/api/jobs/", {"title": "A", "client_name": "X", "scheduled_date": day}))
    b = ok(sales.write("post", "/api/jobs/", {"title": "B", "client_name": "Y", "scheduled_date": day}))
    c = ok(sales.write("post", "/api/jobs/", {"title": "C", "client_name": "Z", "scheduled_date": day}))
    for job in (a, b):
        ok(sales.write("patch", f"/api/jobs/{job['id']}/", {"assigned_to": technician.pk}))
    a1 = ok(sales.write("post", f"/api/jobs/{a['id']}/tasks/", {"title": "a1"}))
    a2 = ok(sales.write("post", f"/api/jobs/{a['id']}/tasks/", {"title": "a2", "required_equipment": [drill.pk]}))
    a3 = ok(sales.write("post", f"/api/jobs/{a['id']}/tasks/", {"title": "a3"}))
    b1 = ok(sales.write("post", f"/api/jobs/{b['id']}/tasks/", {"title": "b1"}))
    b2 = ok(sales.write("post", f"/api/jobs/{b['id']}/tasks/", {"title": "b2"}))
    ok(sales.write("post", f"/api/jobs/{a['id']}/tasks/reorder/", {"order": [a1["id"], a3["id"], a2["id"]]}))
    ok(sales.write("patch", f"/api/jobs/{a['id']}/", {"title": "A (boiler)"}))
    ok(sales.write("post", f"/api/jobs/{c['id']}/cancel/"))
    ok(sales.write("post", f"/api/jobs/{a['id']}/tasks/", {"title": "bad", "order": 1}))  # 400: order taken
    ok(tech.write("post", f"/api/tasks/{a1['id']}/start/"))
    ok(tech.write("post", f"/api/tasks/{a1['id']}/complete/"))
    ok(tech.write("post", f"/api/tasks/{a1['id']}/complete/"))  # 409: already completed
    ok(tech.write("post", f"/api/tasks/{a2['id']}/start/"))  # 409: a3 comes first now
    ok(tech.write("post", f"/api/tasks/{a3['id']}/complete/"))
    ok(tech.write("post", f"/api/tasks/{a3['id']}/reopen/"))
    ok(tech.write("post", f"/api/tasks/{a3['id']}/complete/"))
    ok(tech.write("post", f"/api/tasks/{a2['id']}/complete/"))
    ok(tech.write("post", f"/api/jobs/{a['id']}/complete/"))
    ok(tech.write("post", f"/api/tasks/{b1['id']}/complete/"))
    ok(tech.write("post", f"/api/tasks/{b2['id']}/start/"))
    ok(admin.write("post", f"/api/jobs/{a['id']}/reopen/"))
    ok(admin.write("patch", f"/api/tasks/{b2['id']}/", {"description": "bring the ladder"}))
    ok(admin.write("delete", f"/api/tasks/{b1['id']}/"))  # 204
    ok(tech.write("post", f"/api/jobs/{b['id']}/complete/"))  # 409: b2 is open
    return seen


def effects(since_job: int, since_audit: int, since_mail: int) -> dict[str, Any]:
    """The day's effects with ids replaced by each job's position in the day (so two runs compare)."""
    jobs = list(Job.objects.filter(pk__gt=since_job).order_by("pk"))
    index = {job.pk: n for n, job in enumerate(jobs)}

    def job_ref(text: str) -> str:
        return re.sub(r"#(\d+)", lambda m: f"#job{index.get(int(m[1]), m[1])}", text)

    state = [
        (
            job.title,
            job.status,
            job.assigned_to_id,
            [(t.order, t.title, t.status, t.description) for t in job.tasks.order_by("order")],
        )
        for job in jobs
    ]
    audit = [
        (
            e.action,
            e.actor_label,
            e.object_type,
            job_ref(e.object_repr),
            index.get(e.job_id),
            {k: v for k, v in e.changes.items() if not k.endswith("_at")},
        )
        for e in AuditEntry.objects.filter(pk__gt=since_audit).order_by("pk")
    ]
    mail = [
        (n.kind, n.recipient, index.get(n.job_id))
        for n in Notification.objects.filter(pk__gt=since_mail).order_by("pk")
    ]
    return {"state": state, "audit": audit, "mail": mail}


def _marks() -> tuple[int, int, int]:
    last = lambda model: model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0  # noqa: E731
    return last(Job), last(AuditEntry), last(Notification)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_flaky_field_day_has_exactly_the_effects_of_a_clean_one(db, seed, sales_agent, technician, admin_user):
    drill = EquipmentFactory(name="Drill")

    def run(rng: random.Random | None) -> tuple[list[int], dict[str, Any], int]:
        marks = _marks()
        clients = [FlakyClient(user, rng) for user in (sales_agent, technician, admin_user)]
        statuses = field_day(*clients, technician=technician, drill=drill)
        return statuses, effects(*marks), sum(client.lost for client in clients)

    clean_statuses, clean, _ = run(None)
    assert clean_statuses.count(409) == 3 and clean_statuses.count(400) == 1  # the day has its refusals too
    flaky_statuses, flaky, lost = run(random.Random(seed))
    assert lost >= 5  # responses really were lost (30% of ~30 writes, and of their retries)
    assert flaky_statuses == clean_statuses
    assert flaky["state"] == clean["state"]
    assert flaky["audit"] == clean["audit"]
    assert flaky["mail"] == clean["mail"]
    assert len(clean["audit"]) > 20 and clean["mail"]


def test_without_keys_the_same_flakiness_does_double_work(db, sales_agent, technician):
    """The control: retries without a key act twice (a second job), which is what the keys prevent."""
    client = client_for(sales_agent)
    body = {"title": "Twice", "client_name": "X", "scheduled_date": "2030-06-01", "assigned_to": technician.pk}
    client.post("/api/jobs/", body, format="json")  # response lost...
    client.post("/api/jobs/", body, format="json")  # ... retried
    assert Job.objects.filter(title="Twice").count() == 2
