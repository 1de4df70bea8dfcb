"""Page-number pagination that rejects bad input instead of guessing.

``page``/``page_size`` that are not integers >= 1 give 400 with a field error; ``page_size`` above 100 is clamped;
a page past the end gives 404 (DRF's behaviour).
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import InvalidPage
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from jobops.fields import ASCII_INTEGER


def _positive_int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    # ASCII digits only: int() would also take " 7 ", "+7", "7_0" and non-ASCII digits such as "٧".
    if not ASCII_INTEGER.fullmatch(raw):
        raise ValidationError({name: ["A valid integer is required."]})
    value = int(raw)
    if value < 1:
        raise ValidationError({name: ["Ensure this value is greater than or equal to 1."]})
    return value


class StrictPageNumberPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request: Request) -> int:
        requested = _positive_int(request, self.page_size_query_param)
        if requested is None:
            return self.page_size
        return min(requested, self.max_page_size)

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any] | None:
        _positive_int(request, self.page_query_param)
        return super().paginate_queryset(queryset, request, view)

    def requested_page(self, request: Request) -> tuple[int, int]:
        """``(page number, page size)`` from the query, validated as ``paginate_queryset`` does: for a list that
        fetches its page and its count together (see ``counted_response``)."""
        return _positive_int(request, self.page_query_param) or 1, self.get_page_size(request)

    def counted_response(self, request: Request, *, number: int, size: int, count: int, results: Any) -> Any:
        """The paginated response for page ``number`` whose rows and total ``count`` were fetched in one query.

        A page past the end is a 404, as in ``paginate_queryset``; the links and the 404 come from the same paginator
        as every other list's.
        """
        paginator = self.django_paginator_class(range(0), size)
        paginator.count = count  # a cached_property: the total is known, no COUNT query
        try:
            self.page = paginator.page(number)
        except InvalidPage as exc:
            raise NotFound(self.invalid_page_message.format(page_number=number, message=str(exc))) from None
        self.request = request
        return self.get_paginated_response(results)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        params = super().get_schema_operation_parameters(view)
        for param in params:
            param["schema"] = {"type": "integer", "minimum": 1}
            if param["name"] == self.page_size_query_param:
                param["description"] = "Results per page (1-100; larger values are clamped to 100)."
        return params
