"""simplejwt's tokens with an ``iat`` (issued at) to the microsecond.

JWT's NumericDate may be fractional (RFC 7519, section 2); simplejwt writes whole seconds. A user's
``tokens_valid_after`` (``accounts.services``) refuses every token issued before it, and with whole seconds a token
issued in the same second as "sign out everywhere" or a password change would either survive it or (rounding the
other way) a login made right after it would be refused. Tokens minted elsewhere with whole seconds still verify.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.utils import timezone
from rest_framework_simplejwt import tokens


def _issued_at(at_time: datetime.datetime) -> float:
    return round(at_time.timestamp(), 6)


class AccessToken(tokens.AccessToken):
    def set_iat(self, claim: str = "iat", at_time: datetime.datetime | None = None) -> None:
        self.payload[claim] = _issued_at(at_time or self.current_time)


class RefreshToken(tokens.RefreshToken):
    access_token_class = AccessToken

    def set_iat(self, claim: str = "iat", at_time: datetime.datetime | None = None) -> None:
        self.payload[claim] = _issued_at(at_time or self.current_time)


def token_is_revoked(user: Any, issued_at: Any) -> bool:
    """Whether a token of ``user`` issued at ``issued_at`` (its ``iat`` claim, seconds since the epoch) was issued
    before the user's ``tokens_valid_after``. A token without a usable ``iat`` counts as revoked once the instant is
    set. Reads only the given row: authentication passes the user it has just loaded."""
    valid_after = getattr(user, "tokens_valid_after", None)
    if valid_after is None:
        return False
    if isinstance(valid_after, str):  # a raw SQLite row (accounts.authentication reads the row without the ORM)
        valid_after = datetime.datetime.fromisoformat(valid_after)
    if timezone.is_naive(valid_after):
        valid_after = valid_after.replace(tzinfo=datetime.UTC)
    if isinstance(issued_at, bool) or not isinstance(issued_at, int | float):
        return True
    return bool(issued_at < valid_after.timestamp())
