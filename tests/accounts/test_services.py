"""accounts.services: role rules, audit entries (exactly one per kind of change, none on failure), the last-admin
rule, token revocation and single-use refresh tokens under concurrency."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts import services
from accounts.models import User
from audit.models import AuditEntry
from jobops.exceptions import ApplicationError, InUse
from tests.factories import DEFAULT_PASSWORD, JobFactory, UserFactory

pytestmark = pytest.mark.django_db

GOOD = "Quite-long-pass-2026"


def test_user_create_derives_staff_flags_from_role(admin_user):
    admin = services.user_create(actor=admin_user, data={"username": "a2", "password": GOOD, "role": "admin"})
    tech = services.user_create(actor=admin_user, data={"username": "t2", "password": GOOD})
    assert (admin.is_staff, admin.is_superuser) == (True, True)
    assert (tech.role, tech.is_staff, tech.is_superuser) == ("technician", False, False)
    assert AuditEntry.objects.filter(action="user.created").count() == 2


@pytest.mark.parametrize("role", ["technician", "sales_agent"])
def test_only_admins_manage_users(role, technician):
    actor = UserFactory(role=role)
    with pytest.raises(PermissionDenied):
        services.user_create(actor=actor, data={"username": "x", "password": GOOD})
    with pytest.raises(PermissionDenied):
        services.user_update(actor=actor, user_id=technician.pk, data={"first_name": "x"})
    with pytest.raises(PermissionDenied):
        services.user_delete(actor=actor, user_id=technician.pk)
    with pytest.raises(PermissionDenied):
        services.user_change_password(actor=actor, user_id=technician.pk, new_password=GOOD)
    # Their own role is not theirs to change either.
    with pytest.raises(PermissionDenied):
        services.user_update(actor=actor, user_id=actor.pk, data={"role": "admin"})
    assert User.objects.get(pk=actor.pk).role == role
    assert not AuditEntry.objects.exists()


def test_inactive_admin_cannot_act(admin_user, technician):
    admin_user.is_active = False
    with pytest.raises(PermissionDenied):
        services.user_update(actor=admin_user, user_id=technician.pk, data={"first_name": "x"})


def test_superuser_flag_without_admin_role_is_not_an_admin(technician):
    # The role alone makes an admin (jobops.roles.is_admin): a row whose flags were edited behind the services' back
    # gets the technician's answer here, as it does from the API's role map and selectors.
    root = UserFactory(role="technician", is_staff=True, is_superuser=True)
    with pytest.raises(PermissionDenied):
        services.user_update(actor=root, user_id=technician.pk, data={"first_name": "Set"})
    with pytest.raises(PermissionDenied):
        services.user_delete(actor=root, user_id=technician.pk)
    technician.refresh_from_db()
    assert technician.first_name != "Set" and not AuditEntry.objects.exists()


def test_createsuperuser_user_may_manage_users(technician):
    root = User.objects.create_superuser("root", "root@example.com", GOOD)
    services.user_update(actor=root, user_id=technician.pk, data={"first_name": "Set"})
    assert AuditEntry.objects.get().actor_id == root.pk


@pytest.mark.parametrize("relation", ["assigned_to", "created_by"])
def test_user_referenced_by_a_job_is_not_deleted(admin_user, technician, sales_agent, relation):
    # The jobs' PROTECT foreign keys refuse the delete (accounts imports nothing of jobs); same 409 as ever.
    user = technician if relation == "assigned_to" else sales_agent
    JobFactory(created_by=sales_agent, assigned_to=technician)
    with pytest.raises(InUse, match="^This user is referenced by jobs; deactivate the user instead.$") as err:
        services.user_delete(actor=admin_user, user_id=user.pk)
    assert err.value.code == "in_use"
    assert User.objects.filter(pk=user.pk).exists()
    assert not AuditEntry.objects.exists()  # the user.deleted entry rolled back with the refused delete


def test_failed_create_writes_nothing(admin_user):
    with pytest.raises(ValidationError) as err:
        services.user_create(actor=admin_user, data={"username": "weak", "password": "weak"})
    assert "password" in err.value.message_dict
    with pytest.raises(ValidationError) as err:
        services.user_create(actor=admin_user, data={"username": "admin1", "password": GOOD})
    assert "username" in err.value.message_dict
    assert not User.objects.filter(username="weak").exists()
    assert not AuditEntry.objects.exists()


def test_change_password_requires_old_password_for_self(technician):
    with pytest.raises(ValidationError) as err:
        services.user_change_password(actor=technician, user_id=technician.pk, new_password=GOOD)
    assert "old_password" in err.value.message_dict
    services.user_change_password(
        actor=technician, user_id=technician.pk, old_password=DEFAULT_PASSWORD, new_password=GOOD
    )
    technician.refresh_from_db()
    assert technician.check_password(GOOD)
    entries = list(AuditEntry.objects.all())
    assert [(e.action, e.changes) for e in entries] == [("user.password_changed", {})]


def test_admin_resets_password_without_old_one(admin_user, technician):
    services.user_change_password(actor=admin_user, user_id=technician.pk, new_password=GOOD)
    technician.refresh_from_db()
    assert technician.check_password(GOOD)
    entry = AuditEntry.objects.get()
    assert entry.actor_id == admin_user.pk and entry.object_id == technician.pk


def test_last_admin_rule(admin_user):
    for data in ({"role": "technician"}, {"is_active": False}):
        with pytest.raises(ApplicationError) as err:
            services.user_update(actor=admin_user, user_id=admin_user.pk, data=data)
        assert err.value.code == "last_admin"
    with pytest.raises(ApplicationError):
        services.user_delete(actor=admin_user, user_id=admin_user.pk)
    # An inactive admin does not count as the other admin.
    UserFactory(role="admin", is_active=False)
    with pytest.raises(ApplicationError):
        services.user_update(actor=admin_user, user_id=admin_user.pk, data={"is_active": False})
    assert not AuditEntry.objects.exists()


def test_deactivation_revokes_outstanding_refresh_tokens(admin_user, technician):
    first = services.token_obtain_pair(username="tech1", password=DEFAULT_PASSWORD)
    second = services.token_obtain_pair(username="tech1", password=DEFAULT_PASSWORD)
    services.token_revoke(refresh=first["refresh"])  # already revoked: must not break the bulk blacklist
    services.user_update(actor=admin_user, user_id=technician.pk, data={"is_active": False})
    assert BlacklistedToken.objects.filter(token__user=technician).count() == 2
    services.user_update(actor=admin_user, user_id=technician.pk, data={"is_active": True})
    for pair in (first, second):
        with pytest.raises(InvalidToken):
            services.token_refresh(refresh=pair["refresh"])


def test_token_obtain_rejects_inactive_and_wrong_password(technician):
    with pytest.raises(AuthenticationFailed):
        services.token_obtain_pair(username="tech1", password="nope")
    technician.is_active = False
    technician.save(update_fields=["is_active"])
    with pytest.raises(AuthenticationFailed):
        services.token_obtain_pair(username="tech1", password=DEFAULT_PASSWORD)
    assert not OutstandingToken.objects.exists()


def test_refresh_token_is_single_use_under_concurrency(require_postgres, transactional_db, technician):
    pair = services.token_obtain_pair(username="tech1", password=DEFAULT_PASSWORD)
    barrier = threading.Barrier(4)
    results = []

    def use():
        try:
            barrier.wait()
            services.token_refresh(refresh=pair["refresh"])
            results.append("ok")
        except InvalidToken:
            results.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ok", "refused", "refused", "refused"]


def test_createsuperuser_makes_an_admin(db):
    from accounts.models import User

    user = User.objects.create_superuser("boss", "boss@example.com", "Str0ng-pass-123")
    assert (user.role, user.is_staff, user.is_superuser) == ("admin", True, True)
