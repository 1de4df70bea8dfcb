"""``manage.py seed_demo``: idempotent demo data (users of every role, equipment, ~60 jobs in every status).

Everything is created through the services, so the demo has a real audit trail and outbox. Running it again adds
nothing: users and equipment are looked up by username/serial, and jobs are only seeded once.
"""

from __future__ import annotations

import datetime
import random
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from equipment.models import Equipment
from jobops.context import audit_context
from jobs import services
from jobs.models import Job

DEMO_PASSWORD = "jobops-demo-2026"
DEMO_MARKER = "[demo]"

USERS = [
    ("admin", User.Role.ADMIN, "Ada", "Admin"),
    ("sales1", User.Role.SALES_AGENT, "Sam", "Seller"),
    ("sales2", User.Role.SALES_AGENT, "Sasha", "Dealer"),
    ("tech1", User.Role.TECHNICIAN, "Tara", "Fixer"),
    ("tech2", User.Role.TECHNICIAN, "Tomas", "Wrench"),
    ("tech3", User.Role.TECHNICIAN, "Toni", "Volt"),
    ("tech4", User.Role.TECHNICIAN, "Theo", "Pipe"),
]

EQUIPMENT = [
    ("Cordless drill", Equipment.Type.TOOL),
    ("Impact driver", Equipment.Type.TOOL),
    ("Multimeter", Equipment.Type.TOOL),
    ("Pipe wrench set", Equipment.Type.TOOL),
    ("Ladder 3 m", Equipment.Type.ACCESSORY),
    ("Safety harness", Equipment.Type.ACCESSORY),
    ("Pressure washer", Equipment.Type.MACHINE),
    ("Generator 5 kW", Equipment.Type.MACHINE),
    ("Core drill", Equipment.Type.MACHINE),
    ("Service van A", Equipment.Type.VEHICLE),
    ("Service van B", Equipment.Type.VEHICLE),
    ("Thermal camera", Equipment.Type.OTHER),
]

CLIENTS = [
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Ltd",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Vandelay Imports",
    "Soylent",
    "Tyrell Corp",
]
WORK = [
    ("Boiler service", ["Isolate supply", "Inspect burner", "Replace seals", "Test and sign off"]),
    ("Kitchen fit-out", ["Measure", "Strip old units", "Fit cabinets", "Connect appliances", "Clean up"]),
    ("Electrical inspection", ["Visual check", "Test circuits", "Write report"]),
    ("Roof repair", ["Set up access", "Replace tiles", "Seal flashing"]),
    ("AC installation", ["Survey", "Mount units", "Run lines", "Commission"]),
    ("Network cabling", ["Plan routes", "Pull cable", "Terminate", "Certify"]),
]


class Command(BaseCommand):
    help = "Create demo users, equipment and jobs (idempotent) and print how to log in."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--jobs", type=int, default=60, help="How many demo jobs to create the first time.")
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the server will listen, for the links printed at the end (`make run` passes HOST and PORT).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with audit_context(source="command", system="seed_demo"):
            users = self._users()
            equipment = self._equipment(users["admin"])
            if Job.objects.filter(description__startswith=DEMO_MARKER).exists():
                self.stdout.write("Demo jobs already present; nothing to add.")
            else:
                count = self._jobs(users, equipment, options["jobs"])
                self.stdout.write(f"Created {count} demo jobs.")
        self._print_logins(options["base_url"].rstrip("/"))

    @transaction.atomic
    def _users(self) -> dict[str, User]:
        from audit.services import audit_record

        users = {}
        for username, role, first, last in USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                user = User(
                    username=username,
                    role=role,
                    first_name=first,
                    last_name=last,
                    email=f"{username}@jobops.example",
                    is_staff=role == User.Role.ADMIN,
                    is_superuser=role == User.Role.ADMIN,
                )
                user.set_password(DEMO_PASSWORD)
                user.save()
                audit_record(
                    actor=None,
                    action="user.created",
                    obj=user,
                    changes={"username": [None, username], "role": [None, role]},
                )
            users[username] = user
        return users

    @transaction.atomic
    def _equipment(self, admin: User) -> list[Equipment]:
        from audit.services import audit_record

        items = []
        for index, (name, kind) in enumerate(EQUIPMENT, start=1):
            serial = f"DEMO-{index:04d}"
            item = Equipment.objects.filter(serial_number=serial).first()
            if item is None:
                item = Equipment.objects.create(name=name, type=kind, serial_number=serial, description=f"Demo {kind}")
                audit_record(
                    actor=None,
                    action="equipment.created",
                    obj=item,
                    changes={"name": [None, name], "serial_number": [None, serial]},
                )
            items.append(item)
        return items

    def _jobs(self, users: dict[str, User], equipment: list[Equipment], count: int) -> int:
        rng = random.Random(2026)
        today = timezone.localdate()
        sales = [users["sales1"], users["sales2"]]
        techs = [users[f"tech{i}"] for i in range(1, 5)]
        admin = users["admin"]
        for index in range(count):
            title, steps = WORK[index % len(WORK)]
            creator = sales[index % 2]
            tech = techs[index % 4] if index % 10 != 9 else None
            offset = rng.randint(-10, 20)
            job = services.job_create(
                actor=creator,
                data={
                    "title": f"{title} #{index + 1}",
                    "description": f"{DEMO_MARKER} {title} for {CLIENTS[index % len(CLIENTS)]}",
                    "client_name": CLIENTS[index % len(CLIENTS)],
                    "priority": rng.choice(list(Job.Priority)),
                    "scheduled_date": today + datetime.timedelta(days=offset),
                    "assigned_to": tech,
                },
            )
            tasks = [
                services.task_add(
                    actor=creator,
                    job_id=job.pk,
                    data={"title": step, "required_equipment": rng.sample(equipment, k=rng.randint(0, 2))},
                )
                for step in steps
            ]
            if tech is None:
                continue
            # Past jobs are mostly done; a few stay open (and overdue); future ones are mostly untouched.
            fate = rng.random()
            if offset < 0 and fate < 0.6:
                for task in tasks:
                    services.task_complete(actor=tech, task_id=task.pk)
                services.job_complete(actor=tech, job_id=job.pk)
            elif fate < 0.25:
                done = rng.randint(1, len(tasks) - 1)
                for task in tasks[:done]:
                    services.task_complete(actor=tech, task_id=task.pk)
                services.task_start(actor=tech, task_id=tasks[done].pk)
            elif fate > 0.93:
                services.job_cancel(actor=admin if fate > 0.97 else creator, job_id=job.pk)
        return count

    def _print_logins(self, base: str) -> None:
        by_role: dict[str, list[str]] = {}
        for username, role, _first, _last in USERS:
            by_role.setdefault(str(role), []).append(username)
        users = ", ".join(f"{' '.join(names)} ({role})" for role, names in by_role.items())
        self.stdout.write(
            self.style.SUCCESS(f"\nJobOps demo is ready. Password for every demo user: {DEMO_PASSWORD}")
            + f"\n  Users:       {users}"
            + f"\n  Start here:  {base}/  (links to the docs, the admin and the health checks)"
            + f"\n  API docs:    {base}/api/docs/  (Swagger UI)   {base}/api/redoc/  (ReDoc)"
            + f"\n  Admin:       {base}/admin/  (log in as admin)"
            + "\n  Get a token:"
            + f"\n    curl -s -X POST {base}/api/auth/token/ -H 'Content-Type: application/json' \\"
            + f'\n         -d \'{{"username": "tech1", "password": "{DEMO_PASSWORD}"}}\'\n'
        )
