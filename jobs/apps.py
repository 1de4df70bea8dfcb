from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"

    def ready(self) -> None:
        from equipment.signals import equipment_rendering_changed

        from . import feed

        equipment_rendering_changed.connect(feed.on_equipment_rendering_changed, dispatch_uid="jobs.feed.equipment")
