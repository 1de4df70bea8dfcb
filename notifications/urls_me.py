"""Mounted at ``/api/auth/me/notifications/``: the caller's channel preferences."""

from django.urls import path

from .views import NotificationPreferencesView

urlpatterns = [path("", NotificationPreferencesView.as_view(), name="me-notifications")]
