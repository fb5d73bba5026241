"""Request limits (issue 11, finding 12): hostile bodies, ids and id lists answer 4xx with a code, never 500.

A deeply nested JSON body, NUL or a lone surrogate in a JSON string, a 5,000-digit id in a URL or a body, and a
request naming more ids than the database takes in one statement — through the API as a client sends them.
"""

import json

import pytest
from django.test import override_settings

from annotation.models import Batch
from core.ids import MAX_ID
from core.parsers import loads
from tests.factories import BatchFactory, ItemFactory

pytestmark = pytest.mark.django_db

HUGE = "9" * 5000
OVER_BIGINT = str(MAX_ID + 1)


def post_json(client, url: str, body: str):
    return client.generic("POST", url, body, "application/json")


def nested(depth: int) -> str:
    return '{"batches": ' + "[" * depth + "]" * depth + "}"


# --- Depth -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [40, 100_000])
def test_a_deeply_nested_body_is_400_json_too_deep(depth, project, lead_client):
    response = post_json(lead_client, f"/api/v1/projects/{project.pk}/datasets/", nested(depth))
    assert response.status_code == 400, response.content
    assert response.json() == {"code": "json_too_deep", "detail": "The body nests deeper than 32 levels."}


def test_a_body_at_the_depth_limit_is_parsed():
    assert loads(nested(31).encode()) == {"batches": json.loads(nested(31))["batches"]}
    with override_settings(TANDEM_JSON_MAX_DEPTH=5):
        with pytest.raises(Exception, match="deeper than 5 levels"):
            loads(b'{"a": [[[[{}]]]]}')
        assert loads(b'{"a": [[[{}]]]}') == {"a": [[[{}]]]}


# --- Text the database cannot store ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("escape", "what"),
    [("\\u0000", "a NUL character (\\u0000)"), ("\\ud800", "a lone surrogate"), ("\\udfff", "a lone surrogate")],
)
def test_nul_or_a_lone_surrogate_in_a_json_string_is_400_invalid_json(escape, what, project, ml_engineer_client):
    body = '{"kind": "sft", "snapshot": 1, "config": {"base_model": "tiny' + escape + '"}}'
    response = post_json(ml_engineer_client, "/api/v1/runs/", body)
    assert response.status_code == 400, response.content
    assert response.json() == {
        "code": "invalid_json",
        "detail": f"The body contains {what}, which cannot be stored as text.",
    }


def test_nul_in_a_key_and_raw_surrogate_bytes_are_refused(project, lead_client):
    url = f"/api/v1/projects/{project.pk}/datasets/"
    response = post_json(lead_client, url, '{"seed": 1, "x\\u0000": 2}')
    assert (response.status_code, response.json()["code"]) == (400, "invalid_json")
    response = lead_client.generic("POST", url, b'{"weighting": "vote\xed\xa0\x80"}', "application/json")
    assert (response.status_code, response.json()["code"]) == (400, "parse_error")  # not UTF-8


def test_a_valid_surrogate_pair_is_text_like_any_other():
    assert loads(b'{"t": "\\ud83d\\ude00"}') == {"t": "\U0001f600"}


@pytest.fixture
def assignment_id(project, annotator_client):
    batch = BatchFactory(project=project)
    ItemFactory(batch=batch, project=project)
    session_id = annotator_client.post(f"/api/v1/projects/{project.pk}/sessions/").json()["id"]
    return annotator_client.get(f"/api/v1/sessions/{session_id}/next/").json()["assignment_id"]


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"choice": "left", "justification": "a\\u0000b"}', "invalid_json"),
        ('{"choice": "left", "dimensions": {"x": "\\ud800"}}', "invalid_json"),
        ('{"choice": "left", "dimensions": ' + "[" * 50_000 + "]" * 50_000 + "}", "json_too_deep"),
    ],
)
def test_the_annotator_loop_refuses_the_same_bodies(fast_path, body, code, assignment_id, annotator_client):
    with override_settings(TANDEM_LOOP_FAST_PATH=fast_path):
        response = post_json(annotator_client, f"/api/v1/assignments/{assignment_id}/judgment/", body)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code


# --- Ids -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", [HUGE, OVER_BIGINT, "0"])
@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/sessions/{}/",
        "/api/v1/sessions/{}/next/",
        "/api/v1/projects/{}/sessions/",
        "/api/v1/projects/{}/agreement/",
        "/api/v1/projects/{}/split-items/",
        "/api/v1/projects/{}/datasets/",
        "/api/v1/datasets/{}/",
        "/api/v1/datasets/{}/files/train.jsonl/",
        "/api/v1/runs/{}/",
        "/api/v1/runs/{}/metrics/",
        "/api/v1/batches/{}/close/",
    ],
)
def test_an_id_that_is_not_a_bigint_in_an_api_url_is_a_json_404(url, bad_id, lead_client):
    response = lead_client.get(url.format(bad_id))
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}


@pytest.mark.parametrize("url", ["/annotate/{}/", "/runs/{}/", "/lead/projects/{}/", "/lead/projects/1/annotators/{}/"])
def test_an_id_that_is_not_a_bigint_in_a_page_url_is_a_404(url, lead_client):
    assert lead_client.get(url.format(HUGE)).status_code == 404
    assert lead_client.get(url.format(OVER_BIGINT)).status_code == 404


def test_the_largest_bigint_is_still_an_id_that_simply_does_not_exist(lead_client):
    response = lead_client.get(f"/api/v1/runs/{MAX_ID}/")
    assert response.status_code == 404  # looked up, not found: no overflow on the way


@pytest.mark.parametrize("value", [HUGE, OVER_BIGINT, -1])
def test_an_id_out_of_range_in_a_body_or_query_is_400_with_a_code(value, project, lead_client, ml_engineer_client):
    response = post_json(ml_engineer_client, "/api/v1/runs/", f'{{"kind": "sft", "snapshot": {value}, "config": {{}}}}')
    assert response.status_code == 400, response.content
    assert response.json()["code"] in ("invalid", "parse_error")  # 5,000 digits are past Python's int parsing
    response = post_json(lead_client, f"/api/v1/projects/{project.pk}/datasets/", f'{{"batches": [{value}]}}')
    assert response.status_code == 400, response.content
    assert "code" in response.json()
    for url in (f"/api/v1/projects/{project.pk}/split-items/?batch={value}", f"/api/v1/runs/?project={value}"):
        response = lead_client.get(url)
        assert response.status_code == 400, (url, response.content)
        assert response.json()["code"] == "invalid"


@pytest.mark.parametrize("count", [1001, 70_000])
def test_a_request_naming_too_many_ids_is_400(count, project, lead_client):
    body = json.dumps({"batches": list(range(1, count + 1))})
    response = post_json(lead_client, f"/api/v1/projects/{project.pk}/datasets/", body)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid"
    assert body["batches"] == ["Ensure this field has no more than 1000 elements."]


def test_a_list_of_ids_within_the_cap_reaches_the_service(project, lead_client):
    # 1,000 ids of which none is a closed batch of the project: the service's own refusal, not a size error.
    closed = BatchFactory(project=project, status=Batch.Status.CLOSED)
    body = json.dumps({"batches": [closed.pk, *range(10**9, 10**9 + 999)]})
    response = post_json(lead_client, f"/api/v1/projects/{project.pk}/datasets/", body)
    assert response.status_code == 400, response.content
    assert "no more than" not in response.content.decode()


@pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity"])
def test_a_number_that_is_not_finite_is_a_parse_error(number, project, lead_client):
    response = post_json(
        lead_client, f"/api/v1/projects/{project.pk}/datasets/", f'{{"validation_fraction": {number}}}'
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "parse_error"
