from django.urls import path
from rest_framework.routers import SimpleRouter

from .analytics import AnalyticsViewSet
from .attachments.views import (
    AttachmentContentView,
    AttachmentThumbnailView,
    AttachmentViewSet,
    JobAttachmentViewSet,
    TaskAttachmentViewSet,
)
from .dashboard import TechnicianDashboardViewSet
from .equipment_usage import EquipmentUsageViewSet
from .feed_views import ChangeFeedViewSet
from .views import JobViewSet, TaskViewSet

router = SimpleRouter(trailing_slash=True)
router.register("jobs", JobViewSet, basename="job")
router.register("tasks", TaskViewSet, basename="task")
router.register("attachments", AttachmentViewSet, basename="attachment")

urlpatterns = [
    path(
        "dashboard/technician/",
        TechnicianDashboardViewSet.as_view({"get": "list"}),
        name="dashboard-technician",
    ),
    path("changes/", ChangeFeedViewSet.as_view({"get": "list"}), name="changes"),
    path("analytics/", AnalyticsViewSet.as_view({"get": "retrieve"}), name="analytics"),
    # Beside the equipment router's routes (equipment/ is below jobs in the app layers: see jobs.equipment_usage).
    path("equipment/<int:pk>/usage/", EquipmentUsageViewSet.as_view({"get": "retrieve"}), name="equipment-usage"),
    path(
        "tasks/<int:task_pk>/attachments/",
        TaskAttachmentViewSet.as_view({"get": "list", "post": "create"}),
        name="task-attachments",
    ),
    path("jobs/<int:job_pk>/attachments/", JobAttachmentViewSet.as_view({"get": "list"}), name="job-attachments"),
    path("attachments/<int:pk>/content/", AttachmentContentView.as_view(), name="attachment-content"),
    path("attachments/<int:pk>/thumbnail/", AttachmentThumbnailView.as_view(), name="attachment-thumbnail"),
    *router.urls,
]
