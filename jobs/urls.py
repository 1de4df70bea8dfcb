from rest_framework.routers import SimpleRouter

from .views import JobViewSet, TaskViewSet

router = SimpleRouter(trailing_slash=True)
router.register("jobs", JobViewSet, basename="job")
router.register("tasks", TaskViewSet, basename="task")

urlpatterns = router.urls
