from rest_framework.routers import SimpleRouter

from .views import EquipmentViewSet

router = SimpleRouter(trailing_slash=True)
router.register("equipment", EquipmentViewSet, basename="equipment")

urlpatterns = router.urls
