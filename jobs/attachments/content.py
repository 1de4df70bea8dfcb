"""What an upload is, decided from its bytes, and the bytes that are stored.

The type comes from the content (magic numbers), never from the file name or the client's ``Content-Type``: JPEG,
PNG, WebP or PDF; anything else is refused (415). Images are decoded with Pillow under a pixel limit checked from
the header *before* decoding (a decompression bomb costs nothing), fully decoded (a truncated file fails here, not
in a browser), and re-encoded without any metadata: no EXIF (GPS, camera serials), XMP, ICC or text chunks are
stored. The orientation in the EXIF is applied to the pixels first, so the picture still stands the right way up.
PDFs are stored as they came (not decoded). Output goes to a spooled temporary file: small results stay in memory,
large ones go to disk, so a 10 MiB upload is never held twice in memory.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import warnings
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError
from rest_framework import status

from jobops.exceptions import ApplicationError

JPEG = "image/jpeg"
PNG = "image/png"
WEBP = "image/webp"
PDF = "application/pdf"
EXTENSIONS = {JPEG: "jpg", PNG: "png", WEBP: "webp", PDF: "pdf"}
PILLOW_FORMATS = {JPEG: "JPEG", PNG: "PNG", WEBP: "WEBP"}
IMAGE_TYPES = frozenset(PILLOW_FORMATS)
CHUNK = 64 * 1024
#: Results up to this size stay in memory; larger ones spill to a temporary file.
SPOOL_BYTES = 1024 * 1024
THUMBNAIL_PX = 320


class UnsupportedMediaType(ApplicationError):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    default_code = "unsupported_media_type"


class TooLarge(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"  # the same code as any other body over its limit (jobops.exceptions)


class InvalidImage(ApplicationError):
    """A file that claims to be an image (by its magic number) but does not decode, or is too large to decode."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_image"


@dataclass(frozen=True)
class Prepared:
    """The bytes to store (``file``, at position 0) and what is recorded about them."""

    file: IO[bytes]
    content_type: str
    size: int
    sha256: str
    width: int | None
    height: int | None

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.content_type]


def sniff(head: bytes) -> str | None:
    """The content type of a file that starts with ``head`` (its first 16 bytes or more), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"%PDF-"):
        return PDF
    return None


def max_bytes() -> int:
    return int(settings.ATTACHMENT_MAX_BYTES)


def _spool() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # the caller closes it


def _digest(file: IO[bytes]) -> tuple[int, str]:
    file.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := file.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    file.seek(0)
    return size, digest.hexdigest()


def _copy(source: IO[bytes]) -> IO[bytes]:
    out = _spool()
    source.seek(0)
    while chunk := source.read(CHUNK):
        out.write(chunk)
    return out


ALL_TYPES = frozenset(EXTENSIONS)


def prepare(upload: IO[bytes], *, size: int, allowed: frozenset[str] = ALL_TYPES, refusal: str = "") -> Prepared:
    """Check and clean an uploaded file of ``size`` bytes: 413 over ``ATTACHMENT_MAX_BYTES``, 415 for a type other
    than JPEG, PNG, WebP and PDF, or not in ``allowed`` (with the message ``refusal``), 400 for an image that does
    not decode or has more than ``ATTACHMENT_MAX_PIXELS`` pixels. Returns the bytes to store."""
    if size > max_bytes():
        raise TooLarge(f"The file is larger than the limit of {max_bytes()} bytes.")
    upload.seek(0)
    content_type = sniff(upload.read(16))
    upload.seek(0)
    if content_type is None:
        raise UnsupportedMediaType("Only JPEG, PNG and WebP images and PDF documents are accepted.")
    if content_type not in allowed:
        raise UnsupportedMediaType(refusal or "This type of file is not accepted here.")
    if content_type == PDF:
        out = _copy(upload)
        width = height = None
    else:
        out, width, height = _reencode(upload, content_type)
    stored_size, sha256 = _digest(out)
    return Prepared(out, content_type, stored_size, sha256, width, height)


def _open_image(source: IO[bytes], content_type: str) -> Image.Image:
    """The decoded image, after the pixel limit was checked from its header. ``InvalidImage`` otherwise."""
    limit = int(settings.ATTACHMENT_MAX_PIXELS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(source, formats=[PILLOW_FORMATS[content_type]])
            width, height = image.size
            if width * height > limit:
                raise InvalidImage(f"The image has {width} x {height} pixels; the limit is {limit} pixels.")
            image.load()  # the whole decode: a truncated or corrupt file fails here
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidImage(f"The image has more pixels than the limit of {limit}.") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
            raise InvalidImage(f"The image could not be decoded ({error.__class__.__name__}).") from None
    return image


def _without_metadata(image: Image.Image) -> Image.Image:
    """``image`` turned the right way up and stripped of everything but its pixels, in place (no second copy of a
    large photo in memory): a transparency key becomes an alpha channel first (it lives in ``info``, which goes
    with the metadata)."""
    ImageOps.exif_transpose(image, in_place=True)
    if "transparency" in image.info:
        image = image.convert("RGBA")
    image.info = {}
    return image


def _save(image: Image.Image, content_type: str, out: IO[bytes]) -> None:
    options: dict[str, Any] = {}
    if content_type == JPEG:
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        options = {"quality": 90}
    elif content_type == WEBP:
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.mode else "RGB")
        options = {"quality": 90}
    elif image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        image = image.convert("RGBA")
    image.save(out, format=PILLOW_FORMATS[content_type], **options)


#: Images decoded at once per process: a gthread worker with many concurrent uploads decodes them a few at a time,
#: so its memory is bounded by ``ATTACHMENT_DECODE_SLOTS`` decoded images, not by the number of requests.
_DECODE_SLOTS = threading.BoundedSemaphore(max(1, int(getattr(settings, "ATTACHMENT_DECODE_SLOTS", 2))))


def _reencode(upload: IO[bytes], content_type: str) -> tuple[IO[bytes], int, int]:
    with _DECODE_SLOTS:
        return _reencode_now(upload, content_type)


def _reencode_now(upload: IO[bytes], content_type: str) -> tuple[IO[bytes], int, int]:
    image = _open_image(upload, content_type)
    try:
        clean = _without_metadata(image)
        out = _spool()
        _save(clean, content_type, out)
        return out, clean.width, clean.height
    except (OSError, ValueError) as error:
        raise InvalidImage(f"The image could not be re-encoded ({error.__class__.__name__}).") from None
    finally:
        image.close()


def thumbnail(source: IO[bytes], content_type: str) -> tuple[IO[bytes], str]:
    """A thumbnail at most ``THUMBNAIL_PX`` on each side of the stored image ``source``: JPEG, or PNG when the image
    has transparency. Returns the bytes and their content type."""
    image = _open_image(source, content_type)
    try:
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        has_alpha = "A" in image.mode or "transparency" in image.info
        out = _spool()
        if has_alpha:
            image.convert("RGBA").save(out, format="PNG")
            kind = PNG
        else:
            image.convert("RGB").save(out, format="JPEG", quality=85)
            kind = JPEG
        out.seek(0)
        return out, kind
    finally:
        image.close()
