"""Audit trail API: read-only, admin only. (Each job's history is served by jobs, which scopes it: ``GET
/api/jobs/{id}/history/`` reads ``selectors.audit_history_of_job``.)"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins

from jobops.api import ScopedViewSet
from jobops.roles import ADMIN_ONLY

from . import selectors
from .filters import AuditFilter
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
