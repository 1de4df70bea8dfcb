"""Reproducible benchmark data for JobOps, bulk-loaded into PostgreSQL with COPY.

Everything comes from one ``random.Random(seed)``; dates are laid out relative to *today* (UTC) because the day
view and the overdue flag depend on it, so the same seed gives the same data set shifted to the run's date.
The rows respect every model constraint and the task invariant (completed tasks form a prefix of each job's
ordered list, at most one ``in_progress`` task right after it), so the write mix and the services behave as on
real data. About one timestamp in twenty has zero microseconds: DRF renders those without a fraction, which the
limit server's SQL formatting must reproduce.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

UTC = dt.UTC


@dataclass(frozen=True)
class Sizes:
    jobs: int = 10_000
    tasks: int = 50_000
    equipment: int = 200
    technicians: int = 50
    sales_agents: int = 10
    audit: int = 50_000


@dataclass(frozen=True)
class Generated:
    """What the harness needs to know about the data it just loaded."""

    admin_username: str
    sales_usernames: list[str]
    technician_usernames: list[str]
    counts: dict[str, int]
    seconds: float


ADMIN_USERNAME = "bench_admin"

_VERBS = ["Install", "Repair", "Inspect", "Service", "Replace", "Calibrate", "Upgrade", "Clean", "Test", "Commission"]
_OBJECTS = [
    "boiler",
    "heat pump",
    "air handler",
    "fire alarm panel",
    "elevator controller",
    "solar inverter",
    "backup generator",
    "water heater",
    "chiller",
    "access control",
    "sprinkler riser",
    "EV charger",
]
_SITES = ["HQ", "warehouse", "north site", "clinic", "school", "depot", "retail unit", "lab", "Café Müller", "plant 2"]
_CLIENT_A = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent", "Tyrell"]
_CLIENT_B = ["Industries", "Logistics", "Holdings", "Foods", "Health", "Energy", "Retail", "Labs", "& Sons", "GmbH"]
_SENTENCES = [
    "Customer reports intermittent faults since last week.",
    "Bring the ladder; access is through the roof hatch.",
    'Site contact asks to "call 15 minutes before arrival".',
    "Parking is at the rear of the building.",
    "Follow-up from the previous visit; parts were ordered.",
    "Check the warranty sticker before opening the unit.",
    "Noise complaint from tenants on the 3rd floor.",
    "Annual maintenance per contract §4.2.",
    "Key safe code is with the facility manager.\nSign in at reception.",
    "Ersatzteil bestellt — Lieferung voraussichtlich Montag.",
]
_TASK_TITLES = [
    "Arrive and sign in",
    "Isolate power",
    "Inspect unit",
    "Measure readings",
    "Replace filter",
    "Replace faulty part",
    "Tighten connections",
    "Update firmware",
    "Pressure test",
    "Clean up site",
    "Functional test",
    "Customer sign-off",
]
_EQUIPMENT_TYPES = ["tool", "machine", "vehicle", "accessory", "other"]
_EQUIPMENT_NAMES = {
    "tool": ["Multimeter", "Torque wrench", "Drill", "Crimper", "Thermal camera", "Leak detector"],
    "machine": ["Generator", "Compressor", "Pipe threader", "Vacuum pump", "Pressure washer"],
    "vehicle": ["Van", "Pickup", "Cargo bike", "Box truck"],
    "accessory": ["Ladder", "Harness", "Extension reel", "Tool bag", "Work light"],
    "other": ["Spare parts kit", "Safety signage", "Tablet"],
}
_PRIORITIES = ["low", "medium", "high", "urgent"]
_PRIORITY_WEIGHTS = [20, 45, 25, 10]


class _Clock:
    """Random timestamps with microseconds (a few deliberately whole seconds), never after ``now``."""

    def __init__(self, rng: random.Random, now: dt.datetime) -> None:
        self.rng = rng
        self.now = now

    def micro(self, value: dt.datetime) -> dt.datetime:
        micro = 0 if self.rng.random() < 0.05 else self.rng.randrange(1, 1_000_000)
        return min(value.replace(microsecond=micro), self.now)

    def on_day(self, day: dt.date, first_hour: int = 7, last_hour: int = 17) -> dt.datetime:
        start = dt.datetime(day.year, day.month, day.day, first_hour, tzinfo=UTC)
        return self.micro(start + dt.timedelta(seconds=self.rng.randrange((last_hour - first_hour) * 3600)))

    def after(self, value: dt.datetime, min_minutes: int, max_minutes: int) -> dt.datetime:
        return self.micro(value + dt.timedelta(seconds=self.rng.randrange(min_minutes * 60, max_minutes * 60 + 1)))


def _job_status(rng: random.Random, day: dt.date, today: dt.date) -> str:
    if day < today:
        weights = {"completed": 75, "cancelled": 10, "pending": 7, "in_progress": 8}
    elif day == today:
        weights = {"completed": 15, "cancelled": 5, "pending": 50, "in_progress": 30}
    else:
        weights = {"completed": 0, "cancelled": 10, "pending": 85, "in_progress": 5}
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _copy(cur: psycopg.Cursor, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    count = 0
    cols = ", ".join(f'"{c}"' for c in columns)
    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def generate(
    conninfo: str, *, sizes: Sizes, seed: int, password_hash: str, now: dt.datetime | None = None
) -> Generated:
    """Fill the (freshly migrated, empty) database at ``conninfo`` and run VACUUM ANALYZE on it.

    Every user gets ``password_hash`` (one PBKDF2 hash computed once by Django), so the harness can log in as any
    of them. Returns the usernames per role and the row counts.
    """
    started = time.monotonic()
    rng = random.Random(seed)
    now = (now or dt.datetime.now(UTC)).astimezone(UTC)
    today = now.date()
    clock = _Clock(rng, now)

    # --- users --------------------------------------------------------------------------------------------------
    users: list[tuple[Any, ...]] = []
    joined = clock.micro(now - dt.timedelta(days=400))
    next_user_id = 1
    admin_id = next_user_id
    users.append((admin_id, ADMIN_USERNAME, "Bench", "Admin", "admin", True))
    sales_ids: list[int] = []
    sales_names: list[str] = []
    for i in range(1, sizes.sales_agents + 1):
        next_user_id += 1
        sales_ids.append(next_user_id)
        sales_names.append(f"bench_sales_{i:03d}")
        users.append((next_user_id, sales_names[-1], "Sales", f"Agent {i}", "sales_agent", False))
    tech_ids: list[int] = []
    tech_names: list[str] = []
    for i in range(1, sizes.technicians + 1):
        next_user_id += 1
        tech_ids.append(next_user_id)
        tech_names.append(f"bench_tech_{i:03d}")
        users.append((next_user_id, tech_names[-1], "Tech", f"Nician {i}", "technician", False))
    user_rows = [
        (
            uid,
            password_hash,
            None,
            is_admin,
            name,
            first,
            last,
            f"{name}@bench.invalid",
            is_admin,
            True,
            joined,
            role,
            "",
        )  # fmt: skip
        for uid, name, first, last, role, is_admin in users
    ]
    username_by_id = {uid: name for uid, name, *_ in users}

    # --- equipment ----------------------------------------------------------------------------------------------
    equipment_rows = []
    active_equipment: list[int] = []
    for eid in range(1, sizes.equipment + 1):
        etype = rng.choice(_EQUIPMENT_TYPES)
        is_active = rng.random() < 0.95
        if is_active:
            active_equipment.append(eid)
        created = clock.micro(now - dt.timedelta(days=rng.randrange(200, 400)))
        equipment_rows.append(
            (
                eid,
                created,
                clock.after(created, 0, 60 * 24 * 30),
                f"{rng.choice(_EQUIPMENT_NAMES[etype])} {eid:03d}",
                etype,
                f"BN-{seed:02d}-{eid:06d}",
                is_active,
                rng.choice(["", "Stored in van 2.", "Calibrated yearly.", "Shared between teams."]),
            )
        )

    # --- jobs and their tasks: at least one task per job, the rest spread at random (mean tasks/jobs) ------------
    clients = [f"{a} {b}" for a in _CLIENT_A for b in _CLIENT_B]
    per_job = [1] * sizes.jobs
    for _ in range(max(0, sizes.tasks - sizes.jobs)):
        per_job[rng.randrange(sizes.jobs)] += 1
    job_rows: list[tuple[Any, ...]] = []
    jobs_meta: list[tuple[int, str, dt.datetime, int]] = []
    task_rows: list[tuple[Any, ...]] = []
    m2m_rows: list[tuple[int, int, int]] = []
    audit_events: list[tuple[Any, ...]] = []  # (at, actor_id, action, object_type, object_id, repr, job_id, changes)
    task_id = 0
    for jid, n_tasks in enumerate(per_job, start=1):
        day = today + dt.timedelta(days=rng.randint(-60, 60))
        status = _job_status(rng, day, today)
        assigned = rng.choice(tech_ids) if (status != "pending" or rng.random() < 0.92) and tech_ids else None
        creator = rng.choice(sales_ids) if sales_ids and rng.random() < 0.7 else admin_id
        created = clock.on_day(min(day, today) - dt.timedelta(days=rng.randint(1, 30)), 8, 18)
        title = f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)} at {rng.choice(_SITES)}"
        job_repr = f"#{jid} {title}"
        overdue = status in ("pending", "in_progress") and day < today
        jobs_meta.append((jid, title, created, creator))
        audit_events.append((created, creator, "job.created", "job", jid, job_repr, jid, {"title": [None, title]}))
        if assigned is not None:
            audit_events.append(
                (clock.after(created, 0, 30), creator, "job.assigned", "job", jid, job_repr, jid,
                 {"assigned_to": [None, assigned]})
            )  # fmt: skip
        if status == "completed":
            n_done, in_progress = n_tasks, False
        elif status == "cancelled":
            n_done, in_progress = rng.randint(0, n_tasks - 1), False
        elif status == "in_progress":
            n_done = rng.randint(0, n_tasks - 1)
            in_progress = n_done == 0 or rng.random() < 0.6
        else:
            n_done, in_progress = 0, False
        # Work happens on the scheduled day, or (for open work that already started) within the last few hours.
        cursor = clock.on_day(day, 7, 9) if status == "completed" else clock.micro(now - dt.timedelta(hours=9))
        cursor = max(cursor, created)
        order = 0
        for k in range(n_tasks):
            task_id += 1
            order += 1 if rng.random() < 0.95 else 2  # the odd gap, as after a deletion
            started_at = completed_at = None
            if k < n_done:
                task_status = "completed"
                started_at = clock.after(cursor, 1, 20)
                completed_at = clock.after(started_at, 10, 60)
                cursor = completed_at
            elif k == n_done and in_progress:
                task_status = "in_progress"
                started_at = clock.after(cursor, 1, 20)
            else:
                task_status = "pending"
            task_title = rng.choice(_TASK_TITLES)
            task_rows.append(
                (
                    task_id,
                    jid,
                    order,
                    task_title,
                    rng.choice(["", "", "See job notes.", "Photograph before and after."]),
                    task_status,
                    started_at,
                    completed_at,
                    created,
                    completed_at or started_at or created,
                )
            )
            n_equipment = rng.choice([0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
            for eid in rng.sample(active_equipment, min(len(active_equipment), n_equipment)):
                m2m_rows.append((len(m2m_rows) + 1, task_id, eid))
            actor = assigned or admin_id
            task_repr = f"{order}. {task_title}"
            if started_at is not None:
                audit_events.append(
                    (started_at, actor, "task.started", "task", task_id, task_repr, jid,
                     {"status": ["pending", "in_progress"]})
                )  # fmt: skip
            if completed_at is not None:
                audit_events.append(
                    (completed_at, actor, "task.completed", "task", task_id, task_repr, jid,
                     {"status": ["in_progress", "completed"]})
                )  # fmt: skip
        job_completed_at = clock.after(cursor, 1, 30) if status == "completed" else None
        updated = max(job_completed_at or created, clock.after(created, 0, 60 * 24 * 3))
        if status == "completed":
            audit_events.append(
                (job_completed_at, assigned or admin_id, "job.status_changed", "job", jid, job_repr, jid,
                 {"status": ["in_progress", "completed"]})
            )  # fmt: skip
        elif status == "cancelled":
            audit_events.append(
                (clock.after(created, 60, 600), creator, "job.status_changed", "job", jid, job_repr, jid,
                 {"status": ["pending", "cancelled"]})
            )  # fmt: skip
        if overdue:
            audit_events.append(
                (clock.on_day(day + dt.timedelta(days=1), 0, 1), None, "job.flagged_overdue", "job", jid, job_repr,
                 jid, {"overdue": [False, True]})
            )  # fmt: skip
        job_rows.append(
            (
                jid,
                created,
                updated,
                title,
                " ".join(rng.sample(_SENTENCES, rng.randint(0, 3))),
                rng.choice(clients),
                status,
                rng.choices(_PRIORITIES, weights=_PRIORITY_WEIGHTS)[0],
                day,
                overdue,
                assigned,
                creator,
                job_completed_at,
            )
        )

    # --- audit: sample the event history down (or pad it with edits) to the requested size ------------------------
    if len(audit_events) > sizes.audit:
        audit_events = rng.sample(audit_events, sizes.audit)
    while len(audit_events) < sizes.audit:
        jid, title, created, creator = rng.choice(jobs_meta)
        audit_events.append(
            (clock.after(created, 5, 60 * 24), creator, "job.updated", "job", jid, f"#{jid} {title}", jid,
             {"description": ["", "Updated by the office."]})
        )  # fmt: skip
    audit_events.sort(key=lambda e: (min(e[0], now), e[4] or 0, e[2]))
    audit_rows = []
    for aid, (at, actor, action, otype, oid, repr_, jid, changes) in enumerate(audit_events, start=1):
        system = action == "job.flagged_overdue"
        audit_rows.append(
            (
                aid,
                min(at, now),
                actor,
                "system:flag_overdue_jobs" if system else username_by_id.get(actor, "unknown"),
                action,
                otype,
                oid,
                repr_,
                jid,
                json.dumps(changes),
                "" if system else f"{rng.getrandbits(128):032x}",
                "task" if system else "api",
            )
        )

    # --- load -----------------------------------------------------------------------------------------------------
    counts: dict[str, int] = {}
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        user_cols = ["id", "password", "last_login", "is_superuser", "username", "first_name", "last_name", "email",
                     "is_staff", "is_active", "date_joined", "role", "phone"]  # fmt: skip
        counts["users"] = _copy(cur, "accounts_user", user_cols, user_rows)
        counts["equipment"] = _copy(
            cur,
            "equipment_equipment",
            ["id", "created_at", "updated_at", "name", "type", "serial_number", "is_active", "description"],
            equipment_rows,
        )
        job_cols = ["id", "created_at", "updated_at", "title", "description", "client_name", "status", "priority",
                    "scheduled_date", "overdue", "assigned_to_id", "created_by_id", "completed_at"]  # fmt: skip
        counts["jobs"] = _copy(cur, "jobs_job", job_cols, job_rows)
        task_cols = ["id", "job_id", "order", "title", "description", "status", "started_at", "completed_at",
                     "created_at", "updated_at"]  # fmt: skip
        counts["tasks"] = _copy(cur, "jobs_jobtask", task_cols, task_rows)
        counts["task_equipment"] = _copy(
            cur, "jobs_jobtask_required_equipment", ["id", "jobtask_id", "equipment_id"], m2m_rows
        )
        audit_cols = ["id", "at", "actor_id", "actor_label", "action", "object_type", "object_id", "object_repr",
                      "job_id", "changes", "request_id", "source"]  # fmt: skip
        counts["audit"] = _copy(cur, "audit_auditentry", audit_cols, audit_rows)
        for table in (
            "accounts_user",
            "equipment_equipment",
            "jobs_job",
            "jobs_jobtask",
            "jobs_jobtask_required_equipment",
            "audit_auditentry",
        ):
            # Explicit ids were loaded: move each identity sequence past them so the API's inserts get fresh ids.
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
            )
    # VACUUM cannot run inside a transaction; it also sets the visibility map, as autovacuum would in production.
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    return Generated(
        admin_username=ADMIN_USERNAME,
        sales_usernames=sales_names,
        technician_usernames=tech_names,
        counts=counts,
        seconds=time.monotonic() - started,
    )
