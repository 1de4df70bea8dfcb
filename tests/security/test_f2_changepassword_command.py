"""Finding 2, "every password change, anywhere": ``manage.py changepassword`` goes through the service too."""

import pytest
from django.core.management import call_command

from accounts.models import User
from audit.models import AuditEntry

from .conftest import REFRESH, login, post

pytestmark = pytest.mark.django_db


def test_changepassword_command_goes_through_the_service(technician, monkeypatch):
    pair = login("tech1")
    answers = iter(["Set-by-operator-77", "Set-by-operator-77"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    call_command("changepassword", "tech1")
    assert User.objects.get(pk=technician.pk).check_password("Set-by-operator-77")
    entry = AuditEntry.objects.get(action="user.password_changed")
    assert (entry.object_id, entry.actor_id, entry.actor_label, entry.source) == (
        technician.pk,
        None,
        "system:changepassword",
        "command",
    )
    assert post(REFRESH, {"refresh": pair["refresh"]}).status_code == 401


def test_changepassword_command_validates(technician, monkeypatch):
    answers = iter(["short", "short"] * 3)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    with pytest.raises(Exception, match="after 3 attempts"):
        call_command("changepassword", "tech1")
    assert not AuditEntry.objects.exists()
