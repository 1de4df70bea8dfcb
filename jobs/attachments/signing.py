"""The links in ``url`` and ``thumbnail_url``: signed by JobOps, checked by JobOps, usable without a JWT.

A link is ``/api/attachments/<id>/content/?exp=<unix time>&sig=<hex>`` (``.../thumbnail/`` for the thumbnail); the
signature is an HMAC-SHA256, keyed from ``SECRET_KEY`` with its own salt, of the attachment id, the variant and the
expiry, so a link cannot be moved to another attachment or variant, nor extended. The expiry is rounded up to the
next minute, so the links of one object stay the same for a minute (cacheable bodies) and are valid for
``ATTACHMENT_URL_SECONDS`` to one minute more. The check is JobOps' own on every backend (moto's server, for one,
does not verify presigned S3 signatures), and a deleted attachment is a 404 at once, whatever its link says.
"""

from __future__ import annotations

import datetime
import math

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

SALT = "jobops.attachments.link"
CONTENT = "content"
THUMBNAIL = "thumbnail"
VARIANTS = (CONTENT, THUMBNAIL)


def _signature(attachment_id: int, variant: str, expires: int) -> str:
    return salted_hmac(SALT, f"{attachment_id}:{variant}:{expires}", algorithm="sha256").hexdigest()


def expiry(now: datetime.datetime | None = None) -> int:
    """The expiry (unix seconds) of a link issued at ``now``: ``ATTACHMENT_URL_SECONDS`` later, up to the minute."""
    moment = (now or timezone.now()).timestamp() + int(settings.ATTACHMENT_URL_SECONDS)
    return int(math.ceil(moment / 60) * 60)


def signed_path(attachment_id: int, variant: str = CONTENT, *, now: datetime.datetime | None = None) -> str:
    expires = expiry(now)
    path = reverse(f"attachment-{variant}", kwargs={"pk": attachment_id})
    return f"{path}?exp={expires}&sig={_signature(attachment_id, variant, expires)}"


def is_valid(
    attachment_id: int, variant: str, *, exp: str | None, sig: str | None, now: datetime.datetime | None = None
) -> bool:
    """True when ``sig`` signs this attachment, variant and ``exp``, and ``exp`` has not passed."""
    if not exp or not sig or not exp.isascii() or not exp.isdigit() or len(exp) > 12:
        return False
    expires = int(exp)
    if not constant_time_compare(sig, _signature(attachment_id, variant, expires)):
        return False
    return (now or timezone.now()).timestamp() < expires
