from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import AuditEntryViewSet, JobHistoryView

router = SimpleRouter(trailing_slash=True)
router.register("audit", AuditEntryViewSet, basename="audit")

urlpatterns = [
    path("jobs/<int:pk>/history/", JobHistoryView.as_view(), name="job-history"),
    *router.urls,
]
