from django.apps import AppConfig


class JobOpsConfig(AppConfig):
    name = "jobops"
    verbose_name = "JobOps"
