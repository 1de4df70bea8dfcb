from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        TECHNICIAN = "technician", "Technician"
        SALES_AGENT = "sales_agent", "Sales agent"

    role = models.CharField(max_length=20, choices=Role.choices, default=Role.TECHNICIAN, db_index=True)
    phone = models.CharField(max_length=32, blank=True)

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
