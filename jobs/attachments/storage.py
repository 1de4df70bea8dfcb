"""Where attachment bytes live: ``STORAGES["default"]`` (django-storages' S3 backend when ``S3_BUCKET`` is set, the
file system under ``MEDIA_ROOT`` otherwise), under keys that reveal nothing.

A key is ``attachments/<32 random hex digits>.<ext>`` (its thumbnail: ``...<same digits>.thumb.<ext>``): no job,
task, client or file name in it, and not guessable. Objects are never public: S3 objects take the bucket's private
default (no ACL is sent), and the bytes are only reachable through a JobOps-signed link (``signing``), which answers
with a presigned URL valid for ``S3_PRESIGNED_SECONDS`` (S3) or with the bytes (file system).
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterable
from typing import IO, Any

from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

PREFIX = "attachments"
THUMB = ".thumb."


def storage() -> Storage:
    """The storage of attachments (looked up per call, so a test's settings override is honoured)."""
    return storages["default"]


def new_key(extension: str) -> str:
    return f"{PREFIX}/{secrets.token_hex(16)}.{extension}"


def thumbnail_key(key: str, extension: str) -> str:
    """The deterministic key of ``key``'s thumbnail: a redelivered thumbnail task finds it instead of making another."""
    stem = key.rsplit(".", 1)[0]
    return f"{stem}{THUMB}{extension}"


def put(key: str, content: IO[bytes]) -> str:
    """Store ``content`` under ``key`` (streamed: S3 multipart above its threshold); returns the name stored."""
    content.seek(0)
    return storage().save(key, File(content, name=key))


def open_object(key: str) -> IO[bytes]:
    file: Any = storage().open(key, "rb")
    return file


def exists(key: str) -> bool:
    return storage().exists(key)


def remove(keys: Iterable[str]) -> None:
    """Delete the objects ``keys`` (a missing one is not an error: removal is idempotent)."""
    target = storage()
    for key in keys:
        if key:
            target.delete(key)


def is_local() -> bool:
    """True when the bytes are on this machine's file system (served by JobOps), False for object storage."""
    return isinstance(storage(), FileSystemStorage)


def presigned_url(key: str, *, content_type: str, filename: str) -> str:
    """A short-lived URL of the object ``key`` on object storage, with the response headers JobOps would send."""
    target: Any = storage()
    parameters = {"ResponseContentType": content_type, "ResponseContentDisposition": f'inline; filename="{filename}"'}
    return str(target.url(key, parameters=parameters))


def list_objects() -> list[str]:
    """Every key under the attachments prefix."""
    target = storage()
    try:
        _dirs, files = target.listdir(PREFIX)
    except FileNotFoundError:  # the file system before the first upload
        return []
    return [f"{PREFIX}/{name}" for name in files]


def modified_at(key: str) -> datetime.datetime:
    return storage().get_modified_time(key)
