"""The ASGI application: Django's HTTP handler plus the WebSocket routes (``/ws/changes/``).

Served by gunicorn with uvicorn workers (``docker/entrypoint.sh ws``) and by ``make run``. The WebSocket routes
live in an app; the platform names them in ``settings.WEBSOCKET_URLPATTERNS`` (as ``ROOT_URLCONF`` names the URL
conf) so that ``jobops`` imports no app (import-linter layers).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobops.settings.base")

# Django first: it sets up the apps, which the consumers' imports (models) need.
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": URLRouter(import_string(settings.WEBSOCKET_URLPATTERNS)),
    }
)
