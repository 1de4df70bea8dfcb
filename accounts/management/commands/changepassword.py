"""``manage.py changepassword [USERNAME]``: Django's command, saving through ``accounts.services``.

Django's own command sets the hash and saves the row directly: no audit entry, and the user's sessions (refresh
tokens, access tokens) survive. This one asks the same questions, then calls ``user_change_password`` as the operator
(someone with a shell on the server, audited as ``system:changepassword`` from source ``command``), which validates,
audits and ends every session of the user.
"""

from __future__ import annotations

import getpass
from typing import Any

from django.contrib.auth.management.commands import changepassword
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from accounts import services
from accounts.models import User
from jobops.context import audit_context


class Command(changepassword.Command):
    help = "Change a user's password (validated, audited, and every session of the user ended)."

    def _ask(self, prompt: str = "Password: ") -> str:
        password = getpass.getpass(prompt=prompt)
        if not password:
            raise CommandError("aborted")
        return password

    def handle(self, *args: Any, **options: Any) -> str:
        username = options["username"] or getpass.getuser()
        user = User._default_manager.using(options["database"]).filter(username=username).first()
        if user is None:
            raise CommandError(f"user '{username}' does not exist")
        self.stdout.write(f"Changing password for user '{user}'")
        for _attempt in range(3):
            first = self._ask()
            if first != self._ask("Password (again): "):
                self.stdout.write("Passwords do not match. Please try again.")
                continue
            try:
                with audit_context(source="command", system="changepassword"):
                    services.user_change_password(actor=None, user_id=user.pk, new_password=first, operator=True)
            except ValidationError as exc:
                self.stderr.write("\n".join(exc.messages))
                continue
            return f"Password changed successfully for user '{user}'"
        raise CommandError(f"Aborting password change for user '{user}' after 3 attempts")
