from rest_framework.routers import SimpleRouter

from .views import (
    NotificationViewSet,
    PushSubscriptionViewSet,
    WebhookDeliveryViewSet,
    WebhookEndpointViewSet,
)

router = SimpleRouter(trailing_slash=True)
router.register("notifications", NotificationViewSet, basename="notification")
router.register("webhooks", WebhookEndpointViewSet, basename="webhook")
router.register("webhook-deliveries", WebhookDeliveryViewSet, basename="webhook-delivery")
router.register("push-subscriptions", PushSubscriptionViewSet, basename="push-subscription")

urlpatterns = router.urls
