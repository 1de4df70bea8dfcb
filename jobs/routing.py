"""WebSocket routes (``settings.WEBSOCKET_URLPATTERNS`` names this list; ``jobops.asgi`` mounts it)."""

from django.urls import path

from .consumers import ChangesConsumer

websocket_urlpatterns = [
    # Channels' URLRouter takes Django's path() with an ASGI app where django-stubs expect a view.
    path("ws/changes/", ChangesConsumer.as_asgi(), name="ws-changes"),  # type: ignore[arg-type]
]
