from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.validators import RegexValidator
from django.db import models
from django.utils.deconstruct import deconstructible

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


@deconstructible
class UsernameValidator(RegexValidator):
    """What a new username may hold: ASCII letters and digits and ``@ . + - _`` (Django's default allows any Unicode
    letter). Spelt out rather than ``\\w``: the OpenAPI schema publishes this pattern, and ``\\w`` means ASCII in the
    ECMA-262 dialect JSON Schema uses but every Unicode letter in Python's, so client and server would disagree
    about ``"ï"``. The one definition: the model field (admin site, ``createsuperuser``) and the API's write
    serializers both check it."""

    regex = r"\A[A-Za-z0-9@.+_-]+\Z"
    message = "Enter a valid username: letters A-Z and a-z, digits and @ . + - _ only."


class User(AbstractUser):
    # The platform's role choices (``jobops.roles``), reachable as ``User.Role`` like any nested choices.
    Role = Role

    # django-stubs types the attribute as Django's Unicode validator; any validator is what Django reads it as.
    username_validator = UsernameValidator()  # type: ignore[assignment]
    username = models.CharField(
        "username",
        max_length=150,
        unique=True,
        help_text="Required. 150 characters or fewer. Letters A-Z and a-z, digits and @ . + - _ only.",
        validators=[username_validator],
        error_messages={"unique": "A user with that username already exists."},
    )

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
