"""The scoped ViewSet base every JobOps resource uses.

``get_queryset`` always goes through the resource's selector with ``request.user`` (scope once, fail closed), the
role map decides who may run each action, and writes validate with a write serializer, call one service, re-fetch
the result through the scoped selector and render it with the read serializer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from django.db.models import Model, QuerySet
from rest_framework import serializers, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from accounts.permissions import HasActionRole


class ScopedViewSet(viewsets.GenericViewSet):
    #: selector(user=...) -> QuerySet, already scoped to what the user may see.
    selector: ClassVar[Callable[..., QuerySet[Any]]]
    allowed_roles: ClassVar[Mapping[str, frozenset[str]]] = {}
    read_serializer_class: ClassVar[type[serializers.BaseSerializer]]
    write_serializer_classes: ClassVar[Mapping[str, type[serializers.BaseSerializer]]] = {}
    permission_classes = [IsAuthenticated, HasActionRole]

    def get_queryset(self) -> QuerySet[Any]:
        # Looked up on the class so a plain function is not bound as a method.
        return type(self).selector(user=self.request.user)

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # Filters and ordering are list parameters: a detail URL or an action ignores them (get_object() would
        # otherwise turn `?status=...` on /jobs/5/cancel/ into a 404 or a 400).
        if self.action != "list":
            return queryset
        return super().filter_queryset(queryset)

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return self.write_serializer_classes.get(self.action, self.read_serializer_class)

    def validate_input(
        self, serializer_class: type[serializers.BaseSerializer] | None = None, *, partial: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        serializer_class = serializer_class or self.get_serializer_class()
        serializer = serializer_class(
            data=self.request.data, partial=partial, context=self.get_serializer_context(), **kwargs
        )
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def render(self, instance: Model, *, status_code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=instance.pk)
        data = self.read_serializer_class(fresh, context=self.get_serializer_context()).data
        return Response(data, status=status_code)
