"""/api/users/ over HTTP: the role x action matrix, scoping (404 outside it), shapes per role, filters, validation,
409 on referenced users, audit entries and query budgets."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from audit.models import AuditEntry
from tests.conftest import client_for
from tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db

ADMIN_FIELDS = {"id", "username", "email", "first_name", "last_name", "phone", "role", "is_active", "date_joined",
                "last_login"}  # fmt: skip
PUBLIC_FIELDS = {"id", "username", "first_name", "last_name"}


@pytest.fixture
def people(admin_user, technician, sales_agent):
    return {"admin": admin_user, "technician": technician, "sales_agent": sales_agent, "anonymous": None}


@pytest.fixture
def targets(db):
    """Objects to act on: an active technician (in a sales agent's scope) and users outside that scope."""
    return {
        "tech": UserFactory(username="target-tech", role="technician"),
        "inactive_tech": UserFactory(username="target-inactive", role="technician", is_active=False),
        "admin": UserFactory(username="target-admin", role="admin", is_staff=True),
        "sales": UserFactory(username="target-sales", role="sales_agent"),
    }


def call(user, method, url, data=None):
    return getattr(client_for(user), method)(url, data=data, format="json")


NEW_USER = {"username": "newbie", "password": "Very-secret-42!", "role": "technician"}

# (method, url, body, {persona: status}); {target} is filled in.
MATRIX = [
    ("get", "/api/users/", None, dict(admin=200, technician=403, sales_agent=200, anonymous=401)),
    ("post", "/api/users/", NEW_USER, dict(admin=201, technician=403, sales_agent=403, anonymous=401)),
]
DETAIL = {
    # target -> {action: {persona: status}}
    "tech": {
        "get": dict(admin=200, technician=403, sales_agent=200, anonymous=401),
        "patch": dict(admin=200, technician=403, sales_agent=403, anonymous=401),
        "put": dict(admin=200, technician=403, sales_agent=403, anonymous=401),
        "delete": dict(admin=204, technician=403, sales_agent=403, anonymous=401),
    },
    "inactive_tech": {
        "get": dict(admin=200, technician=403, sales_agent=404, anonymous=401),
        "patch": dict(admin=200, technician=403, sales_agent=404, anonymous=401),
        "put": dict(admin=200, technician=403, sales_agent=404, anonymous=401),
        "delete": dict(admin=204, technician=403, sales_agent=404, anonymous=401),
    },
    "admin": {
        "get": dict(admin=200, technician=403, sales_agent=404, anonymous=401),
        "patch": dict(admin=200, technician=403, sales_agent=404, anonymous=401),
        "put": dict(admin=200, technician=403, sales_agent=404, anonymous=401),
        "delete": dict(admin=204, technician=403, sales_agent=404, anonymous=401),
    },
    "sales": {
        "get": dict(admin=200, technician=403, sales_agent=404, anonymous=401),
        "patch": dict(admin=200, technician=403, sales_agent=404, anonymous=401),
        "put": dict(admin=200, technician=403, sales_agent=404, anonymous=401),
        "delete": dict(admin=204, technician=403, sales_agent=404, anonymous=401),
    },
}
BODIES = {"patch": {"first_name": "Changed"}, "put": {"username": "renamed", "last_name": "Put"}, "get": None,
          "delete": None}  # fmt: skip


@pytest.mark.parametrize("persona", ["admin", "technician", "sales_agent", "anonymous"])
@pytest.mark.parametrize("method, url, body, expected", MATRIX)
def test_collection_matrix(people, targets, persona, method, url, body, expected):
    response = call(people[persona], method, url, body)
    assert response.status_code == expected[persona], response.content


@pytest.mark.parametrize("persona", ["admin", "technician", "sales_agent", "anonymous"])
@pytest.mark.parametrize("method", ["get", "patch", "put", "delete"])
@pytest.mark.parametrize("target", list(DETAIL))
def test_detail_matrix(people, targets, persona, method, target):
    obj = targets[target]
    before = User.objects.filter(pk=obj.pk).values().first()
    response = call(people[persona], method, f"/api/users/{obj.pk}/", BODIES[method])
    expected = DETAIL[target][method][persona]
    assert response.status_code == expected, response.content
    if expected >= 400:
        # Nothing changed, nothing audited.
        assert User.objects.filter(pk=obj.pk).values().first() == before
        assert not AuditEntry.objects.exists()


def test_nonexistent_and_malformed_ids_are_404(people):
    assert call(people["admin"], "get", "/api/users/999999/").status_code == 404
    assert call(people["admin"], "get", "/api/users/abc/").status_code == 404
    assert call(people["admin"], "delete", f"/api/users/{2**70}/").status_code == 404


def test_sales_agent_sees_only_active_technicians_with_public_fields(people, targets, other_technician):
    response = call(people["sales_agent"], "get", "/api/users/")
    body = response.json()
    ids = {row["id"] for row in body["results"]}
    assert ids == {people["technician"].pk, other_technician.pk, targets["tech"].pk}
    assert all(set(row) == PUBLIC_FIELDS for row in body["results"])
    detail = call(people["sales_agent"], "get", f"/api/users/{targets['tech'].pk}/").json()
    assert set(detail) == PUBLIC_FIELDS


def test_admin_sees_everyone_with_all_fields(people, targets):
    body = call(people["admin"], "get", "/api/users/").json()
    assert body["count"] == User.objects.count() == 7
    assert all(set(row) == ADMIN_FIELDS for row in body["results"])
    assert all("password" not in row for row in body["results"])


def test_sales_agent_cannot_probe_emails_through_search(people, targets):
    targets["tech"].email = "secret-address@corp.example"
    targets["tech"].save(update_fields=["email"])
    sales = call(people["sales_agent"], "get", "/api/users/?search=secret-address").json()
    assert sales["count"] == 0
    admin = call(people["admin"], "get", "/api/users/?search=secret-address").json()
    assert [row["id"] for row in admin["results"]] == [targets["tech"].pk]


def test_filters(people, targets):
    admin = people["admin"]

    def ids(query):
        response = call(admin, "get", f"/api/users/?{query}")
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids("role=admin") == {admin.pk, targets["admin"].pk}
    assert ids("is_active=false") == {targets["inactive_tech"].pk}
    assert ids("role=technician&is_active=true") == {people["technician"].pk, targets["tech"].pk}
    assert ids("search=TARGET-") == {t.pk for t in targets.values()}
    assert ids("search=%20") == set(User.objects.values_list("pk", flat=True))


@pytest.mark.parametrize("query", ["role=boss", "is_active=maybe", "page=0", "page_size=x", "page=99"])
def test_bad_query_parameters(people, query):
    response = call(people["admin"], "get", f"/api/users/?{query}")
    assert response.status_code == (404 if query == "page=99" else 400)


def test_create_user(people):
    response = call(
        people["admin"],
        "post",
        "/api/users/",
        {**NEW_USER, "email": "n@example.com", "first_name": "New", "role": "admin", "is_staff": False, "id": 5},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == ADMIN_FIELDS
    user = User.objects.get(username="newbie")
    assert body["id"] == user.pk
    assert user.check_password("Very-secret-42!")
    assert (user.role, user.is_staff, user.is_superuser, user.is_active) == ("admin", True, True, True)
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_id, entry.actor_id, entry.source) == (
        "user.created",
        user.pk,
        people["admin"].pk,
        "api",
    )
    assert entry.changes["role"] == [None, "admin"]
    assert "password" not in entry.changes
    assert user.password not in str(entry.changes)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"password": "Very-secret-42!"}, "username"),
        ({"username": "x1"}, "password"),
        ({"username": "x1", "password": "short"}, "password"),
        ({"username": "x1", "password": "12345678901"}, "password"),
        ({"username": "passwordx", "password": "passwordx1"}, "password"),
        ({"username": "tech1", "password": "Very-secret-42!"}, "username"),
        ({"username": "bad name", "password": "Very-secret-42!"}, "username"),
        ({"username": "x1", "password": "Very-secret-42!", "role": "boss"}, "role"),
        ({"username": "x1", "password": "Very-secret-42!", "email": "nope"}, "email"),
        ({"username": "x1", "password": "Very-secret-42!", "is_active": "perhaps"}, "is_active"),
        ({"username": "x1", "password": "Very-secret-42!", "is_active": "false"}, "is_active"),
        ({"username": "x1", "password": "Very-secret-42!", "role": 1}, "role"),
        ({"username": ["x1"], "password": "Very-secret-42!"}, "username"),
        ({"username": "x" * 151, "password": "Very-secret-42!"}, "username"),
    ],
)
def test_create_user_validation(people, body, field):
    count = User.objects.count()
    response = call(people["admin"], "post", "/api/users/", body)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert User.objects.count() == count
    assert not AuditEntry.objects.exists()


def test_update_user_audits_each_kind_of_change_once(people, targets):
    tech = targets["tech"]
    response = call(
        people["admin"],
        "patch",
        f"/api/users/{tech.pk}/",
        {"role": "sales_agent", "is_active": False, "first_name": "Renamed", "last_login": "2020-01-01T00:00:00Z"},
    )
    assert response.status_code == 200, response.content
    assert response.json()["role"] == "sales_agent" and response.json()["is_active"] is False
    entries = {e.action: e for e in AuditEntry.objects.all()}
    assert set(entries) == {"user.role_changed", "user.deactivated", "user.updated"}
    assert AuditEntry.objects.count() == 3
    assert entries["user.role_changed"].changes == {"role": ["technician", "sales_agent"]}
    assert entries["user.deactivated"].changes == {"is_active": [True, False]}
    assert set(entries["user.updated"].changes) == {"first_name"}
    tech.refresh_from_db()
    assert tech.last_login is None


def test_promotion_grants_admin_site_and_demotion_takes_it_away(people, targets):
    tech = targets["tech"]
    call(people["admin"], "patch", f"/api/users/{tech.pk}/", {"role": "admin"})
    tech.refresh_from_db()
    assert (tech.is_staff, tech.is_superuser) == (True, True)
    entry = AuditEntry.objects.get(action="user.role_changed")
    assert entry.changes == {"role": ["technician", "admin"], "is_staff": [False, True], "is_superuser": [False, True]}
    call(people["admin"], "patch", f"/api/users/{tech.pk}/", {"role": "technician"})
    tech.refresh_from_db()
    assert (tech.is_staff, tech.is_superuser) == (False, False)


def test_reactivation_is_audited(people, targets):
    inactive = targets["inactive_tech"]
    response = call(people["admin"], "patch", f"/api/users/{inactive.pk}/", {"is_active": True})
    assert response.status_code == 200
    assert list(AuditEntry.objects.values_list("action", "changes")) == [
        ("user.activated", {"is_active": [False, True]})
    ]


def test_patch_that_changes_nothing_writes_nothing(people, targets):
    tech = targets["tech"]
    response = call(people["admin"], "patch", f"/api/users/{tech.pk}/", {"username": tech.username, "role": tech.role})
    assert response.status_code == 200
    assert not AuditEntry.objects.exists()


def test_admin_sets_another_users_password(people, targets):
    tech = targets["tech"]
    response = call(people["admin"], "patch", f"/api/users/{tech.pk}/", {"password": "Another-secret-99"})
    assert response.status_code == 200, response.content
    tech.refresh_from_db()
    assert tech.check_password("Another-secret-99")
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.changes) == ("user.password_changed", {})
    weak = call(people["admin"], "patch", f"/api/users/{tech.pk}/", {"password": "123"})
    assert weak.status_code == 400 and "password" in weak.json()
    own = call(people["admin"], "patch", f"/api/users/{people['admin'].pk}/", {"password": "Another-secret-99"})
    assert own.status_code == 400 and "password" in own.json()
    assert AuditEntry.objects.count() == 1


def test_update_validation(people, targets):
    tech = targets["tech"]
    url = f"/api/users/{tech.pk}/"
    taken = call(people["admin"], "patch", url, {"username": "target-admin"})
    assert taken.status_code == 400 and "username" in taken.json()
    assert call(people["admin"], "patch", url, {"role": "root"}).status_code == 400
    assert call(people["admin"], "put", url, {"first_name": "no username"}).status_code == 400
    assert not AuditEntry.objects.exists()


def test_last_active_admin_cannot_be_demoted_deactivated_or_deleted(people):
    admin = people["admin"]
    url = f"/api/users/{admin.pk}/"
    for body in ({"role": "technician"}, {"is_active": False}):
        response = call(admin, "patch", url, body)
        assert response.status_code == 409, response.content
        assert response.json()["code"] == "last_admin"
    response = call(admin, "delete", url)
    assert response.status_code == 409 and response.json()["code"] == "last_admin"
    admin.refresh_from_db()
    assert (admin.role, admin.is_active) == ("admin", True)
    assert not AuditEntry.objects.exists()
    # With a second active admin it is allowed.
    UserFactory(role="admin")
    assert call(admin, "patch", url, {"role": "technician"}).status_code == 200


@pytest.mark.parametrize("relation", ["assigned_to", "created_by"])
def test_delete_user_referenced_by_a_job_is_409(people, targets, relation):
    user = targets["tech"] if relation == "assigned_to" else targets["sales"]
    JobFactory(**{relation: user}) if relation == "created_by" else JobFactory(assigned_to=user)
    response = call(people["admin"], "delete", f"/api/users/{user.pk}/")
    assert response.status_code == 409
    assert response.json() == {"detail": response.json()["detail"], "code": "in_use"}
    assert User.objects.filter(pk=user.pk).exists()
    assert not AuditEntry.objects.exists()
    # Deactivating instead works.
    assert call(people["admin"], "patch", f"/api/users/{user.pk}/", {"is_active": False}).status_code == 200


def test_delete_user(people, targets):
    tech = targets["tech"]
    response = call(people["admin"], "delete", f"/api/users/{tech.pk}/")
    assert response.status_code == 204
    assert not User.objects.filter(pk=tech.pk).exists()
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_id, entry.object_repr) == ("user.deleted", tech.pk, "target-tech")
    assert entry.changes["username"] == ["target-tech", None]


# --- query budgets -------------------------------------------------------------------------------------------------


def _queries(user, url):
    client = client_for(user)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries)


@pytest.mark.parametrize("persona", ["admin", "sales_agent"])
def test_list_query_count_is_constant(people, persona, django_assert_num_queries):
    UserFactory.create_batch(60, role="technician")
    user = people[persona]
    counts = {size: _queries(user, f"/api/users/?page_size={size}") for size in (1, 10, 50)}
    assert len(set(counts.values())) == 1, counts
    with django_assert_num_queries(3):  # auth user + count + page
        client_for(user).get("/api/users/?page_size=50&search=user")
