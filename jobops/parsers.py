"""The API's JSON parser: DRF's, with a clean 400 for pathologically nested documents.

Python's ``json`` raises ``RecursionError`` (not ``ValueError``) on a document nested a few thousand levels deep
(``[[[[...]]]]``), which DRF's parser does not catch: without this, a one-line request is a 500 (OWASP API4).
Oversized bodies are refused before parsing: DRF reads ``request.body``, which enforces
``DATA_UPLOAD_MAX_MEMORY_SIZE`` (413, see ``jobops.exceptions``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
