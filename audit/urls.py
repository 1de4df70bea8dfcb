from rest_framework.routers import SimpleRouter

from .views import AuditEntryViewSet

router = SimpleRouter(trailing_slash=True)
router.register("audit", AuditEntryViewSet, basename="audit")

urlpatterns = router.urls
