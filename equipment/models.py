from django.db import models

from jobops.models import TimestampedModel


class Equipment(TimestampedModel):
    class Type(models.TextChoices):
        TOOL = "tool", "Tool"
        MACHINE = "machine", "Machine"
        VEHICLE = "vehicle", "Vehicle"
        ACCESSORY = "accessory", "Accessory"
        OTHER = "other", "Other"

    name = models.CharField(max_length=200)
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.TOOL, db_index=True)
    serial_number = models.CharField(max_length=100, unique=True)
    is_active = models.BooleanField(default=True, db_index=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name_plural = "equipment"

    def __str__(self) -> str:
        return f"{self.name} ({self.serial_number})"
