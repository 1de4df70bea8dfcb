from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from jobops import health, views

urlpatterns = [
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("healthz/", health.healthz, name="healthz"),
    path("readyz/", health.readyz, name="readyz"),
    path("live/", include("jobs.urls_live")),
    path("api/auth/", include("accounts.urls_auth")),
    path("api/auth/me/notifications/", include("notifications.urls_me")),
    path("api/", include("accounts.urls")),
    path("api/", include("equipment.urls")),
    path("api/", include("jobs.urls")),
    path("api/", include("audit.urls")),
    path("api/", include("notifications.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="schema", template_name="jobops/redoc.html"),
        name="redoc",
    ),
]

handler404 = "jobops.views.not_found"
handler500 = "jobops.views.server_failure"
