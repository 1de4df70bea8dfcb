from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models

from jobops.roles import Role, is_admin

if TYPE_CHECKING:
    # Generic in django-stubs only (Django's class cannot be subscripted at run time): a manager of ``User`` rows.
    _UserManagerBase = UserManager["User"]
else:
    _UserManagerBase = UserManager


class JobOpsUserManager(_UserManagerBase):
    def create_superuser(
        self, username: str, email: str | None = None, password: str | None = None, **extra: Any
    ) -> "User":
        # `manage.py createsuperuser` makes a JobOps admin, not a technician with Django superpowers.
        extra.setdefault("role", Role.ADMIN)
        return super().create_superuser(username, email, password, **extra)


class User(AbstractUser):
    # The platform's role choices (``jobops.roles``), reachable as ``User.Role`` like any nested choices.
    Role = Role

    role = models.CharField(max_length=20, choices=Role.choices, default=Role.TECHNICIAN, db_index=True)
    phone = models.CharField(max_length=32, blank=True)
    #: Tokens (access and refresh) issued before this instant are refused: moved by "sign out everywhere", a password
    #: change and a deactivation (``accounts.services``). Whole seconds, as a token's ``iat`` claim.
    tokens_valid_after = models.DateTimeField(null=True, blank=True, editable=False)

    objects: ClassVar[JobOpsUserManager] = JobOpsUserManager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["role", "is_active"], name="user_role_active_idx")]

    def __str__(self) -> str:
        return self.username

    @property
    def is_admin_role(self) -> bool:
        return is_admin(self)

    @property
    def is_technician(self) -> bool:
        return self.role == self.Role.TECHNICIAN

    @property
    def is_sales_agent(self) -> bool:
        return self.role == self.Role.SALES_AGENT
