"""Attachments API: thin views over ``selectors`` (reads, scoped as the task) and ``services`` (writes).

``POST/GET /api/tasks/{id}/attachments/``, ``GET /api/jobs/{id}/attachments/``, ``GET/DELETE
/api/attachments/{id}/`` (JWT, scoped: outside the scope is a 404), and the signed links
``/api/attachments/{id}/content/`` and ``.../thumbnail/`` (no JWT: the signature is the authorisation).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import request_user
from jobops.api import ScopedViewSet
from jobops.roles import ALL_ROLES
from jobs.models import Attachment
from jobs.selectors import job_scope

from . import content, services, signing, storage
from .selectors import attachment_scope, task_visible
from .serializers import AttachmentReadSerializer, AttachmentUploadSerializer

NO_BODY = OpenApiResponse(description="No content.")
#: Multipart framing around the file: a body this much over the limit is refused before it is read.
MULTIPART_SLACK = 64 * 1024


class AttachmentViewSet(mixins.RetrieveModelMixin, ScopedViewSet):
    """One attachment: read it, or delete it (its uploader within 24 h while the job is open, or an admin)."""

    selector = attachment_scope
    read_serializer_class = AttachmentReadSerializer
    allowed_roles = {"retrieve": ALL_ROLES, "destroy": ALL_ROLES}
    filter_backends: list[Any] = []

    @extend_schema(summary="Get an attachment", tags=["attachments"])
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Delete an attachment (its uploader within 24 h while the job is open, or an admin)",
        tags=["attachments"],
        responses={204: NO_BODY},
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        attachment = self.get_object()
        services.attachment_delete(actor=request_user(request), attachment_id=attachment.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TaskAttachmentViewSet(ScopedViewSet):
    """A task's attachments: list them, or upload one (multipart)."""

    selector = attachment_scope
    read_serializer_class = AttachmentReadSerializer
    write_serializer_classes = {"create": AttachmentUploadSerializer}
    allowed_roles = {"list": ALL_ROLES, "create": ALL_ROLES}
    filter_backends: list[Any] = []

    parser_classes = [MultiPartParser]  # uploads only: files over 2.5 MB stream to a temporary file, not memory

    def _task_id(self) -> int:
        task_id = int(self.kwargs["task_pk"])
        if not task_visible(user=self.request.user, task_id=task_id):
            raise Http404("No JobTask matches the given query.")
        return task_id

    @extend_schema(
        summary="A task's attachments, oldest first",
        tags=["attachments"],
        responses=AttachmentReadSerializer(many=True),
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        task_id = self._task_id()
        page = self.paginate_queryset(self.get_queryset().filter(task_id=task_id))
        return self.get_paginated_response(AttachmentReadSerializer(page, many=True).data)

    @extend_schema(
        summary="Attach a photo, signature or document to a task (admin, the assigned technician, the creator)",
        tags=["attachments"],
        request={"multipart/form-data": AttachmentUploadSerializer},
        responses={
            201: AttachmentReadSerializer,
            413: OpenApiResponse(description="`request_too_large`: over `ATTACHMENT_MAX_BYTES`."),
            415: OpenApiResponse(description="`unsupported_media_type`: not JPEG, PNG, WebP or PDF (signature: PNG)."),
        },
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        task_id = self._task_id()
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > content.max_bytes() + MULTIPART_SLACK:
            raise content.TooLarge(f"The file is larger than the limit of {content.max_bytes()} bytes.")
        data = self.validate_input(AttachmentUploadSerializer)
        upload = data["file"]
        attachment = services.attachment_upload(
            actor=request_user(request),
            task_id=task_id,
            upload=upload,
            size=upload.size,
            kind=data["kind"],
            caption=data["caption"],
        )
        return self.render(attachment, status_code=status.HTTP_201_CREATED)


class JobAttachmentViewSet(ScopedViewSet):
    """All attachments of a job's tasks."""

    selector = attachment_scope
    read_serializer_class = AttachmentReadSerializer
    allowed_roles = {"list": ALL_ROLES}
    filter_backends: list[Any] = []

    @extend_schema(
        summary="The attachments of all of a job's tasks, oldest first",
        tags=["attachments"],
        responses=AttachmentReadSerializer(many=True),
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        job_id = int(self.kwargs["job_pk"])
        if not job_scope(user=request.user).filter(pk=job_id).exists():
            raise Http404("No Job matches the given query.")
        page = self.paginate_queryset(self.get_queryset().filter(job_id=job_id))
        return self.get_paginated_response(AttachmentReadSerializer(page, many=True).data)


def _signed_link_schema(*, what: str, missing: str) -> Any:
    """The schema of a signed-link download (no JWT: the signature is the authorisation); one per variant."""
    return extend_schema(
        summary=f"An attachment's {what} through a signed link (no JWT)",
        tags=["attachments"],
        auth=[],
        parameters=[
            OpenApiParameter(
                "exp", OpenApiTypes.INT, OpenApiParameter.QUERY, required=True, description="Expiry (unix time)."
            ),
            OpenApiParameter(
                "sig", OpenApiTypes.STR, OpenApiParameter.QUERY, required=True, description="JobOps' signature."
            ),
        ],
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            302: OpenApiResponse(description="To a presigned object-storage URL valid for about a minute."),
            403: OpenApiResponse(description="The link is tampered with or expired."),
            404: OpenApiResponse(description=missing),
        },
    )


class AttachmentContentView(APIView):
    """The bytes behind a signed link: checked here (403 tampered or expired, 404 deleted), then a 302 to a
    presigned object-storage URL valid for about a minute, or the bytes themselves from the file system."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    variant = signing.CONTENT

    @_signed_link_schema(what="bytes", missing="No such attachment (or it was deleted).")
    def get(self, request: Request, pk: int) -> HttpResponseBase:
        params = request.query_params
        if not signing.is_valid(pk, self.variant, exp=params.get("exp"), sig=params.get("sig")):
            raise PermissionDenied("This link is invalid or has expired; fetch the attachment again for a new one.")
        attachment = Attachment.objects.filter(pk=pk).first()
        key = None
        if attachment is not None:
            key = attachment.key if self.variant == signing.CONTENT else attachment.thumbnail_key
        if attachment is None or not key:
            raise Http404("No Attachment matches the given query.")
        content_type = attachment.content_type
        if self.variant == signing.THUMBNAIL:
            content_type = content.PNG if key.endswith(".png") else content.JPEG
        filename = f"attachment-{attachment.pk}{'-thumbnail' if self.variant == signing.THUMBNAIL else ''}"
        filename += "." + key.rsplit(".", 1)[-1]
        if not storage.is_local():
            return HttpResponseRedirect(storage.presigned_url(key, content_type=content_type, filename=filename))
        try:
            handle = storage.open_object(key)
        except FileNotFoundError:
            raise Http404("The attachment's bytes are missing.") from None
        response = FileResponse(handle, content_type=content_type, filename=filename)
        response["Content-Disposition"] = f'inline; filename="{filename}"'
        response["Cache-Control"] = f"private, max-age={min(60, int(settings.ATTACHMENT_URL_SECONDS))}"
        return response


class AttachmentThumbnailView(AttachmentContentView):
    variant = signing.THUMBNAIL

    @_signed_link_schema(what="thumbnail", missing="No such attachment, or no thumbnail yet.")
    def get(self, request: Request, pk: int) -> HttpResponseBase:
        return super().get(request, pk)
