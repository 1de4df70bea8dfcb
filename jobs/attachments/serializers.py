"""Shapes of attachments: the read shape (declared once: the API and the change feed render it) and the upload's
multipart input (validated here, never saved)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobops.fields import ReadModelSerializer
from jobs.models import Attachment

from . import signing


@extend_schema_field({"type": "string", "nullable": True, "description": "A link signed by JobOps (no JWT needed)."})
class SignedLinkField(serializers.Field):
    """A short-lived link to the attachment's bytes (``variant``: content or thumbnail), signed by JobOps; null for
    a thumbnail not made yet (or a document, which has none)."""

    def __init__(self, *, variant: str, **kwargs: Any) -> None:
        kwargs.update(source="*", read_only=True)
        self.variant = variant
        super().__init__(**kwargs)

    def to_representation(self, instance: Attachment) -> str | None:
        if self.variant == signing.THUMBNAIL and not instance.thumbnail_key:
            return None
        return signing.signed_path(instance.pk, self.variant)


class AttachmentReadSerializer(ReadModelSerializer):
    url = SignedLinkField(variant=signing.CONTENT)
    thumbnail_url = SignedLinkField(variant=signing.THUMBNAIL)

    class Meta:
        model = Attachment
        fields = [
            "id",
            "task",
            "job",
            "kind",
            "caption",
            "content_type",
            "size",
            "sha256",
            "width",
            "height",
            "uploaded_by",
            "uploaded_at",
            "url",
            "thumbnail_url",
        ]
        read_only_fields = fields


class AttachmentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=False, help_text="The file: JPEG, PNG, WebP or PDF, decided from its bytes."
    )
    kind = serializers.ChoiceField(
        choices=Attachment.Kind.choices, default=Attachment.Kind.PHOTO, help_text="A signature must be a PNG."
    )
    caption = serializers.CharField(max_length=200, allow_blank=True, required=False, default="")
