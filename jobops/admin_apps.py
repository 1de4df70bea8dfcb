from django.contrib.admin.apps import AdminConfig


class JobOpsAdminConfig(AdminConfig):
    """django.contrib.admin, with JobOps' admin site (login form throttled like the API's login)."""

    default_site = "jobops.admin_site.JobOpsAdminSite"

    def ready(self) -> None:
        super().ready()  # autodiscovers every app's admin module
        from django.contrib import admin
        from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

        # simplejwt's token admins showed live refresh tokens in clear (an admin could act as any user, unaudited),
        # and deleting a blacklist row revived a logged-out token: not in JobOps' admin. Sessions are ended with
        # "sign out everywhere" (accounts) instead. Here, after every app's admin module ran, whatever the app order.
        for model in (OutstandingToken, BlacklistedToken):
            if admin.site.is_registered(model):
                admin.site.unregister(model)
