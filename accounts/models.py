from typing import Any

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models


class JobOpsUserManager(UserManager):
    def create_superuser(self, username: str, email: str | None = None, password: str | None = None, **extra: Any):
        # `manage.py createsuperuser` makes a JobOps admin, not a technician with Django superpowers.
        extra.setdefault("role", "admin")
        return super().create_superuser(username, email, password, **extra)


class User(AbstractUser):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        TECHNICIAN = "technician", "Technician"
        SALES_AGENT = "sales_agent", "Sales agent"

    role = models.CharField(max_length=20, choices=Role.choices, default=Role.TECHNICIAN, db_index=True)
    phone = models.CharField(max_length=32, blank=True)

    objects = JobOpsUserManager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["role", "is_active"], name="user_role_active_idx")]

    def __str__(self) -> str:
        return self.username

    @property
    def is_admin_role(self) -> bool:
        return self.role == self.Role.ADMIN

    @property
    def is_technician(self) -> bool:
        return self.role == self.Role.TECHNICIAN

    @property
    def is_sales_agent(self) -> bool:
        return self.role == self.Role.SALES_AGENT
