"""Equipment API: every role reads the catalogue; only admins change it. Thin views over ``equipment.selectors``
(reads) and ``equipment.services`` (writes)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from jobops.api import ScopedViewSet
from jobops.roles import ADMIN_ONLY, ALL_ROLES

from . import selectors, services
from .filters import EquipmentFilter
from .serializers import EquipmentReadSerializer, EquipmentWriteSerializer

NO_BODY = OpenApiResponse(description="No content.")


@extend_schema_view(
    list=extend_schema(
        summary="List equipment", tags=["equipment"], responses={200: EquipmentReadSerializer(many=True)}
    ),
    retrieve=extend_schema(summary="Get equipment", tags=["equipment"], responses={200: EquipmentReadSerializer}),
    create=extend_schema(
        summary="Add equipment (admin)",
        tags=["equipment"],
        request=EquipmentWriteSerializer,
        responses={201: EquipmentReadSerializer},
    ),
    update=extend_schema(
        summary="Replace equipment's fields (admin)",
        tags=["equipment"],
        request=EquipmentWriteSerializer,
        responses={200: EquipmentReadSerializer},
    ),
    partial_update=extend_schema(
        summary="Change equipment, e.g. deactivate it (admin)",
        tags=["equipment"],
        request=EquipmentWriteSerializer,
        responses={200: EquipmentReadSerializer},
    ),
    destroy=extend_schema(
        summary="Delete equipment (admin)",
        description="Equipment used by any task cannot be deleted (409 `in_use`): deactivate it instead.",
        tags=["equipment"],
        responses={204: NO_BODY},
    ),
)
class EquipmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    selector = selectors.equipment_list_for
    filterset_class = EquipmentFilter
    read_serializer_class = EquipmentReadSerializer
    write_serializer_classes = {
        "create": EquipmentWriteSerializer,
        "update": EquipmentWriteSerializer,
        "partial_update": EquipmentWriteSerializer,
    }
    allowed_roles = {
        "list": ALL_ROLES,
        "retrieve": ALL_ROLES,
        "create": ADMIN_ONLY,
        "update": ADMIN_ONLY,
        "partial_update": ADMIN_ONLY,
        "destroy": ADMIN_ONLY,
    }
    lookup_value_regex = r"[0-9]+"

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self.validate_input(EquipmentWriteSerializer)
        item = services.equipment_create(actor=request.user, data=data)
        return self.render(item, status_code=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        partial = kwargs.pop("partial", False)
        item = self.get_object()
        data = self.validate_input(EquipmentWriteSerializer, partial=partial, instance=item)
        item = services.equipment_update(actor=request.user, equipment_id=item.pk, data=data)
        return self.render(item)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        item = self.get_object()
        services.equipment_delete(actor=request.user, equipment_id=item.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
