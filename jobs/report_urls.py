"""Report endpoints (mounted under ``/api/``). ``equipment/<id>/usage/`` sits beside the equipment router's routes."""

from django.urls import path

from .report_views import AnalyticsView, EquipmentUsageView, TechnicianDashboardView

urlpatterns = [
    path("dashboard/technician/", TechnicianDashboardView.as_view(), name="dashboard-technician"),
    path("analytics/", AnalyticsView.as_view(), name="analytics"),
    path("equipment/<int:pk>/usage/", EquipmentUsageView.as_view(), name="equipment-usage"),
]
