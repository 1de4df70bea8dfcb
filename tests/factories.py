import datetime

import factory
from django.utils import timezone

from accounts.models import User
from equipment.models import Equipment
from jobs.models import Job, JobTask

DEFAULT_PASSWORD = "Test-pass-1234!"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    role = User.Role.TECHNICIAN
    is_active = True
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):
        if create:
            instance.save(update_fields=["password"])


class EquipmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Equipment

    name = factory.Sequence(lambda n: f"Equipment {n}")
    type = Equipment.Type.TOOL
    serial_number = factory.Sequence(lambda n: f"SN-{n:06d}")
    is_active = True


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    title = factory.Sequence(lambda n: f"Job {n}")
    client_name = factory.Faker("company")
    priority = Job.Priority.MEDIUM
    scheduled_date = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=1))
    created_by = factory.SubFactory(UserFactory, role=User.Role.SALES_AGENT)
    assigned_to = None


class JobTaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobTask

    job = factory.SubFactory(JobFactory)
    order = factory.Sequence(lambda n: n + 1)
    title = factory.Sequence(lambda n: f"Task {n}")
