"""Audit trail API: read-only, admin only. (Each job's history is served by jobs, which scopes it: ``GET
/api/jobs/{id}/history/`` reads ``selectors.audit_history_of_job``.)"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.request import Request
from rest_framework.response import Response

from jobops.api import ScopedViewSet
from jobops.replica import replica_reads
from jobops.roles import ADMIN_ONLY

from . import selectors
from .filters import AuditFilter
from .serializers import AuditEntryReadSerializer


@extend_schema_view(
    list=extend_schema(
        summary="List audit entries, newest first (admin)",
        description=(
            "Every recorded change, newest first. Read-only: entries are never changed or deleted here. Served by "
            "the read replica when one is configured: an entry may appear after the replication delay."
        ),
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

    # A report, not a read-your-own-write: the replica serves it when one is configured (jobops.replica).
    @replica_reads
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @replica_reads
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)
