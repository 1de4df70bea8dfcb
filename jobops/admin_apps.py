from django.contrib.admin.apps import AdminConfig


class JobOpsAdminConfig(AdminConfig):
    """django.contrib.admin, with JobOps' admin site (login form throttled like the API's login)."""

    default_site = "jobops.admin_site.JobOpsAdminSite"
