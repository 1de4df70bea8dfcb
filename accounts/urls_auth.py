"""Mounted at ``/api/auth/``."""

from django.urls import path

from .views import LogoutEverywhereView, LogoutView, MeView, PasswordChangeView, TokenObtainView, TokenRefreshView

urlpatterns = [
    path("token/", TokenObtainView.as_view(), name="token-obtain"),
    path("token/refresh/", TokenRefreshView.as_view(), name="token-refresh"),
    path("logout/", LogoutView.as_view(), name="logout"),
    path("logout/all/", LogoutEverywhereView.as_view(), name="logout-all"),
    path("me/", MeView.as_view(), name="me"),
    path("me/password/", PasswordChangeView.as_view(), name="me-password"),
]
