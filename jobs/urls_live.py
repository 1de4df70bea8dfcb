"""The live page for people (``/live/``); jobops.urls includes it by name."""

from django.urls import path

from .live_page import live_page, live_token

urlpatterns = [
    path("", live_page, name="live"),
    path("token/", live_token, name="live-token"),
]
