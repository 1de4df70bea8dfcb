"""The scoped ViewSet base every JobOps API view uses: the one point where a request's queryset is decided.

``get_queryset`` always starts from the resource's scope selector called with ``request.user`` (scope once, fail
closed: an object outside the scope is a 404), and subclasses only *shape* what it returns (``shape_queryset``:
annotations, ordering, related rows), never filter it by user. The role map (``allowed_roles``, default deny)
decides who may run each action. Writes validate with a write serializer, call one service, re-fetch the result
through the scope and render it with the read serializer.

Conditional requests (``jobops.conditional``): ``conditional`` answers a GET with 304 when the client's copy is
current and tags the 200 otherwise; ``precondition`` runs a write under ``If-Match``. ``etag_actions`` and
``precondition_actions`` name the actions that do, for the OpenAPI description (``jobops.schema``).

Read shapes that the database renders (``jobops.jsonshape``: jobs and tasks) go through ``rendered_page`` and
``rendered_object``: one statement for a page and its count, one for an object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import Http404, HttpResponse
from rest_framework import serializers, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from jobops.conditional import ETAG, check_if_match, has_preconditions, not_modified_answer
from jobops.jsonshape import render_one, render_page
from jobops.permissions import HasActionRole

#: No table has 2**62 rows: a larger offset (a huge ``?page=``) selects nothing, as it should, without overflowing a
#: bigint OFFSET; the paginator then answers 404 for a page past the end.
MAX_OFFSET = 2**62


class ScopedViewSet(viewsets.GenericViewSet):
    #: selector(user=...) -> QuerySet: the model's one scope definition, already limited to what the user may see.
    selector: ClassVar[Callable[..., QuerySet[Any]]]
    allowed_roles: ClassVar[Mapping[str, frozenset[str]]] = {}
    read_serializer_class: ClassVar[type[serializers.BaseSerializer]]
    write_serializer_classes: ClassVar[Mapping[str, type[serializers.BaseSerializer]]] = {}
    permission_classes = [IsAuthenticated, HasActionRole]
    #: Actions answering with a strong ETag and 304 on ``If-None-Match`` (documented by ``jobops.schema``).
    etag_actions: ClassVar[frozenset[str]] = frozenset()
    #: Actions that honour ``If-Match`` (412 ``precondition_failed`` when stale).
    precondition_actions: ClassVar[frozenset[str]] = frozenset()

    def get_queryset(self) -> QuerySet[Any]:
        # Looked up on the class so a plain function is not bound as a method. Not overridable in spirit: subclasses
        # shape the scoped queryset in ``shape_queryset``.
        return self.shape_queryset(type(self).selector(user=self.request.user))

    def shape_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """What the current action needs of the scoped ``queryset`` (annotations, order, related rows)."""
        return queryset

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

    # --- conditional requests (jobops.conditional) ----------------------------------------------------------------

    def etag_extra(self, *, url: bool = False) -> tuple[Any, ...]:
        """What besides the data decides a representation: the media type, and for a list its URL (query, page)."""
        media = getattr(self.request, "accepted_media_type", None)
        return (media, self.request.build_absolute_uri()) if url else (media,)

    def page_window(self) -> tuple[int, int]:
        """``(offset, limit)`` of the requested page (400 for a bad ``page``/``page_size``), as ``rendered_page``."""
        paginator: Any = self.paginator
        number, size = paginator.requested_page(self.request)
        return min((number - 1) * size, MAX_OFFSET), size

    def conditional(self, etag: str | None, render: Callable[[], Response]) -> Response | HttpResponse:
        """304 when ``If-None-Match`` holds ``etag`` (computed before rendering), else ``render()`` tagged."""
        answer = not_modified_answer(self.request, etag)
        if answer is not None:
            return answer
        response = render()
        if etag is not None and status.is_success(response.status_code):
            response[ETAG] = etag
        return response

    @contextmanager
    def precondition(self, current: Callable[[], str | None]) -> Iterator[None]:
        """Run the body of the ``with`` under ``If-Match``: in one transaction, ``current()`` (the object's tag, read
        under its lock) is compared first, so the write cannot act on a version the client did not see. Without
        ``If-Match`` nothing changes."""
        if not has_preconditions(self.request):
            yield
            return
        with transaction.atomic():
            check_if_match(self.request, current())
            yield

    # --- database-rendered shapes (jobops.jsonshape) -----------------------------------------------------------

    def rendered_page(
        self, queryset: QuerySet[Any], serializer_class: type[serializers.BaseSerializer[Any]]
    ) -> Response:
        """The paginated list of ``queryset`` (scoped, filtered, ordered) rendered by ``serializer_class``.

        The page and the total come from one statement. The page parameters are validated after the filters were
        applied, so bad input gets the same 400s as through ``paginate_queryset``; a page past the end is a 404.
        """
        paginator: Any = self.paginator
        number, size = paginator.requested_page(self.request)
        count, results = render_page(
            queryset, serializer_class, offset=min((number - 1) * size, MAX_OFFSET), limit=size
        )
        response: Response = paginator.counted_response(
            self.request, number=number, size=size, count=count, results=results
        )
        return response

    def rendered_object(
        self,
        serializer_class: type[serializers.BaseSerializer[Any]],
        *,
        queryset: QuerySet[Any] | None = None,
        pk: Any = None,
        relation: str | None = None,
        status_code: int = status.HTTP_200_OK,
    ) -> Response:
        """The object ``pk`` (default: the URL's) of ``queryset`` (default: the view's scoped queryset), rendered by
        ``serializer_class`` (with ``relation``: the array of its related rows so rendered, e.g. a job's tasks); 404
        when it is outside the scope. One statement.

        The same 404s as ``get_object()`` (an id that is not a number, out of range, or outside the scope), and the
        role map's object check once the object is known to be visible.
        """
        if queryset is None:
            queryset = self.get_queryset()
        if pk is None:
            pk = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        try:
            queryset = queryset.filter(pk=pk)
        except (TypeError, ValueError, ValidationError):
            raise Http404 from None  # as DRF's get_object_or_404: "Not found."
        body = render_one(queryset, serializer_class, relation=relation)
        if body is None:
            raise Http404(f"No {queryset.model._meta.object_name} matches the given query.")
        self.check_object_permissions(self.request, None)
        return Response(body, status=status_code)
