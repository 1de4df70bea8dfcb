"""Query parameters of the user list. Unknown choices and bad booleans are 400s with field errors."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from jobops.filters import StrictBooleanFilter, TextFilter
from jobops.roles import is_admin

from .models import User


class UserFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=User.Role.choices)
    is_active = StrictBooleanFilter()
    search = TextFilter(
        method="filter_search",
        max_length=150,
        help_text="In username, first and last name, and (admins only) email.",
    )

    class Meta:
        model = User
        fields: list[str] = []

    def filter_search(self, qs: QuerySet[User], name: str, value: str) -> QuerySet[User]:
        value = value.strip()
        if not value:
            return qs
        condition = Q(username__icontains=value) | Q(first_name__icontains=value) | Q(last_name__icontains=value)
        # Sales agents do not see e-mail addresses, so they must not be able to probe them through search either.
        user = getattr(self.request, "user", None)
        if is_admin(user):
            condition |= Q(email__icontains=value)
        return qs.filter(condition)
