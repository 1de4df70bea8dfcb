"""``GET /api/changes/``: the change feed over REST (``jobs.feed`` reads, scopes and renders; this view validates and
documents)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from jobops.api import ScopedViewSet
from jobops.fields import QueryIntegerField
from jobops.roles import ALL_ROLES
from jobops.schema import JobOpsAutoSchema

from . import feed, selectors
from .models import Change


class ChangeQuerySerializer(serializers.Serializer):
    after = serializers.RegexField(
        r"^[A-Za-z0-9_-]*$",
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=80,
        help_text="The cursor of a previous answer. Omitted: no changes, just the current cursor.",
    )
    limit = QueryIntegerField(min_value=1, max_value=500, default=100, help_text="At most this many feed rows.")


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "description": (
            "The object as its detail endpoint renders it now (Job detail, Task, Attachment); null when removed."
        ),
        "additionalProperties": {},
    }
)
class ChangeDataField(serializers.JSONField):
    pass


class ChangeSerializer(serializers.Serializer):
    cursor = serializers.CharField(help_text="The feed position of this change.")
    at = serializers.DateTimeField(help_text="When the change was made (UTC).")
    type = serializers.ChoiceField(
        choices=[f"{kind}.{what}" for kind in Change.ObjectType.values for what in ("upserted", "removed")]
    )
    object_type = serializers.ChoiceField(choices=Change.ObjectType.values)
    object_id = serializers.IntegerField()
    job = serializers.IntegerField(help_text="The id of the object's job.")
    data = ChangeDataField()  # type: ignore[assignment]  # a field named like Serializer.data


class ChangePageSerializer(serializers.Serializer):
    changes = ChangeSerializer(many=True)
    cursor = serializers.CharField(help_text="Read on from here.")
    has_more = serializers.BooleanField(help_text="More changes are waiting: read again at once with `cursor`.")


class _OnePageSchema(JobOpsAutoSchema):
    """The feed's ``list`` answers one page object, not an array of them (drf-spectacular wraps a ``list`` action's
    response in an array; schemathesis caught the published schema saying so)."""

    def _is_list_view(self, serializer: Any = None) -> bool:
        return False


class ChangeFeedViewSet(ScopedViewSet):
    """What changed in the caller's scope, in one order; see ``jobs.feed``."""

    selector = selectors.job_scope  # the feed reads through jobs.selectors' job and task scopes (jobs.feed)
    allowed_roles = {"list": ALL_ROLES}
    pagination_class = None
    filter_backends: list[Any] = []
    schema = _OnePageSchema()

    @extend_schema(
        summary="Change feed: what changed in your scope since a cursor",
        description=(
            "Without `after`: no changes, just the current `cursor` (take it, load the lists, then read from it). "
            "With `after`: the changes after it, oldest first; several changes to one object come as its newest. "
            "`data` is the object as its detail endpoint renders it now; an object that is gone or no longer "
            "visible to you comes as `<type>.removed` with `data: null`. Read again with the returned `cursor` "
            "(at once while `has_more`). No change is ever skipped. A cursor older than "
            "`CHANGE_FEED_RETENTION_DAYS` is a 410 `cursor_expired`: reload the lists and start again."
        ),
        tags=["sync"],
        parameters=[ChangeQuerySerializer],
        responses={
            200: ChangePageSerializer,
            410: OpenApiResponse(description="`cursor_expired`: the cursor is older than the feed's retention."),
        },
    )
    def list(self, request: Request) -> Response:
        params = ChangeQuerySerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        page = feed.read_changes(
            user=request.user, after=params.validated_data.get("after"), limit=params.validated_data["limit"]
        )
        return Response({"changes": page.changes, "cursor": page.cursor, "has_more": page.has_more})
