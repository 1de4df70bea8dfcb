"""Finding 3: list inputs are bounded. ``required_equipment`` (task create and update) takes at most
``MAX_RELATED_IDS`` ids (documented in the schema as ``maxItems``, 400 beyond it), duplicates count once, and the ids
are resolved in one query whatever their number."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobops.fields import MAX_RELATED_IDS
from tests.factories import EquipmentFactory, JobTaskFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(api_client, sales_agent):
    return api_client(sales_agent)


def test_a_huge_list_is_a_400_without_a_query_per_id(client, job):
    # The pen test's body: 100,000 ids (300 KB), here one existing id over and over, which cost a SELECT each.
    drill = EquipmentFactory()
    body = {"title": "x", "required_equipment": [drill.pk] * 100_000}
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(f"/api/jobs/{job.pk}/tasks/", body, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "required_equipment" in response.json()
    assert len(ctx.captured_queries) < 10


def test_the_maximum_is_accepted_and_one_more_is_refused(client, job):
    equipment = [EquipmentFactory().pk for _ in range(MAX_RELATED_IDS + 1)]
    too_many = client.post(f"/api/jobs/{job.pk}/tasks/", {"title": "x", "required_equipment": equipment}, format="json")
    assert too_many.status_code == 400
    assert str(MAX_RELATED_IDS) in json.dumps(too_many.json())
    ok = client.post(
        f"/api/jobs/{job.pk}/tasks/", {"title": "x", "required_equipment": equipment[:MAX_RELATED_IDS]}, format="json"
    )
    assert ok.status_code == 201, ok.content[:300]
    assert len(ok.json()["required_equipment"]) == MAX_RELATED_IDS


def test_duplicates_count_once(client, job):
    drill = EquipmentFactory()
    response = client.post(
        f"/api/jobs/{job.pk}/tasks/", {"title": "x", "required_equipment": [drill.pk] * 5}, format="json"
    )
    assert response.status_code == 201, response.content
    assert [item["id"] for item in response.json()["required_equipment"]] == [drill.pk]


def test_ids_resolve_in_one_query(client, job):
    equipment = [EquipmentFactory().pk for _ in range(40)]
    task = JobTaskFactory(job=job)
    counts = []
    for ids in (equipment[:1], equipment):
        # Validation only (an unknown id makes the request a 400 before any write): the queries are the lookups.
        with CaptureQueriesContext(connection) as ctx:
            response = client.patch(f"/api/tasks/{task.pk}/", {"required_equipment": [*ids, 10**9]}, format="json")
        assert response.status_code == 400
        assert "required_equipment" in response.json()
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


def test_the_maximum_is_documented_in_the_schema(client):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    for name in ("JobTaskCreateRequest", "PatchedJobTaskUpdateRequest"):
        prop = schema["components"]["schemas"][name]["properties"]["required_equipment"]
        assert prop["maxItems"] == MAX_RELATED_IDS, name
