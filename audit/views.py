"""Audit trail API: read-only. The admin-only list of every entry, and each job's history for whoever sees the job."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, mixins
from rest_framework.permissions import IsAuthenticated

from accounts.permissions import ADMIN_ONLY
from jobops.api import ScopedViewSet

from . import selectors
from .filters import AuditFilter
from .models import AuditEntry
from .serializers import AuditEntryReadSerializer


@extend_schema_view(
    list=extend_schema(
        summary="List audit entries, newest first (admin)",
        description="Every recorded change, newest first. Read-only: entries are never changed or deleted here.",
        tags=["audit"],
    ),
    retrieve=extend_schema(summary="Get one audit entry (admin)", tags=["audit"]),
)
class AuditEntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """The audit trail. Admins only; there are no write actions (the trail is append-only)."""

    selector = selectors.audit_list_for
    filterset_class = AuditFilter
    read_serializer_class = AuditEntryReadSerializer
    allowed_roles = {"list": ADMIN_ONLY, "retrieve": ADMIN_ONLY}


@extend_schema(
    summary="A job's history: its audit entries and its tasks', newest first",
    description=(
        "Admins, the job's creator (sales agent) and its assigned technician; a job outside the caller's scope "
        "is a 404."
    ),
    tags=["jobs"],
    parameters=[OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The job's id.")],
)
class JobHistoryView(generics.ListAPIView):
    """``GET /api/jobs/{id}/history/``: scoped by ``jobs.selectors.job_get_for`` (out of scope -> 404)."""

    serializer_class = AuditEntryReadSerializer
    permission_classes = [IsAuthenticated]
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[AuditEntry]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user, no job
            return AuditEntry.objects.none()
        return selectors.audit_job_history_for(user=self.request.user, job_id=self.kwargs["pk"])
