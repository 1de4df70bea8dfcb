"""The password hasher: Argon2id at the parameters OWASP's Password Storage Cheat Sheet gives as its first choice.

OWASP: "Use Argon2id with a minimum configuration of 19 MiB of memory, an iteration count of 2, and 1 degree of
parallelism." Django's own ``Argon2PasswordHasher`` defaults (100 MiB, t=2, p=8) are stronger than that minimum but
cost about 230 ms of CPU and 100 MiB per login on the benchmark machine, close to PBKDF2's 1,000,000 iterations
(about 300-400 ms) that made a shift's morning logins queue; at 19 MiB, t=2, p=1 a hash costs about 27 ms. Raise
them here (hashes are upgraded at the next login, since Django's hasher compares the stored parameters with these).
"""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idPasswordHasher(Argon2PasswordHasher):
    """Argon2id (Django's ``argon2`` algorithm, variant id), m=19 MiB, t=2, p=1. Same algorithm name as Django's
    hasher, so hashes it made verify here and the other way round."""

    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1
