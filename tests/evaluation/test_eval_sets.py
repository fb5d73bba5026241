"""Evaluation sets: imported whole or not at all, every bad line named, through the command, the API and the admin;
versions per name; the normalised prompt file and its sha256; who may import and read them."""

import gzip
import hashlib
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from evaluation.errors import EvalSetInvalid, EvalSetTampered
from evaluation.models import EvalPrompt, EvalSet
from evaluation.services.eval_sets import eval_set_import, eval_set_verify
from rewards.services.datasets import prompt_group
from tests.evaluation.sets_fixtures import GOOD_LINES, import_set, jsonl, upload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path) -> Path:
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    Path(settings.ARTIFACTS_DIR).mkdir()
    return Path(settings.ARTIFACTS_DIR)


# Every kind of bad line, each named with its number and reason; line 1 is good.
BAD_LINES = [
    GOOD_LINES[0],
    '{"id": "x", "prompt": "unterminated',
    {"id": "x2", "stratum": "usage"},
    {"id": "x3", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
    {"id": "p1", "prompt": "A second line with the first line's id."},
    {"id": "x5", "prompt": "Typo in a key.", "refrence": "oops"},
    {"id": "x6", "prompt": "A stratum that is not a slug.", "stratum": "Red Team"},
    {"id": "x7", "prompt": "y" * 60},
    {"prompt": "No id."},
    {"id": "x9", "prompt": "Both.", "messages": [{"role": "user", "content": "Both."}]},
    ["not", "an", "object"],
]
WANT_REASONS = {
    2: "bad JSON",
    3: "missing field: prompt",
    4: "the last message must be the user's",
    5: "duplicate id 'p1': line 1 has it too",
    6: "unknown field 'refrence'",
    7: "stratum 'Red Team' is not a short slug",
    8: "prompt is 60 characters, over the limit of 50",
    9: "missing field: id",
    10: "give either prompt or messages, not both",
    11: "expected a JSON object, got list",
}


def assert_every_bad_line(errors: list[dict]) -> None:
    got = {e["line"]: e["reason"] for e in errors}
    assert set(got) == set(WANT_REASONS), got
    for line, reason in WANT_REASONS.items():
        assert reason in got[line], (line, got[line])


def assert_nothing_written(artifacts: Path) -> None:
    assert not EvalSet.objects.exists()
    assert not EvalPrompt.objects.exists()
    assert not [p for p in (artifacts / "eval_sets").glob("**/*") if p.is_file()]


def test_a_good_file_becomes_a_set_with_its_prompts_and_a_hashed_prompt_file(project, artifacts):
    out = StringIO()
    path = artifacts.parent / "golden.jsonl"
    path.write_bytes(jsonl(GOOD_LINES))
    call_command("import_eval_set", str(path), project=project.name, name="golden", stdout=out)
    eval_set = EvalSet.objects.get()
    assert f"Imported evaluation set {eval_set.pk}: golden v1" in out.getvalue()
    assert (eval_set.name, eval_set.version, eval_set.prompt_count) == ("golden", 1, 4)
    assert eval_set.strata == {"red_team": 1, "synthetic": 1, "unspecified": 1, "usage": 1}
    prompts = list(eval_set.prompts.order_by("pk"))
    assert [p.external_id for p in prompts] == ["p1", "p2", "p3", "4"]
    assert prompts[1].messages[-1] == {"role": "user", "content": "What is 2+2?"} and prompts[1].reference == "4"
    assert prompts[2].stratum == "red_team"
    # The group is the snapshot split's normalisation: case and spacing do not matter, a text prompt is a user turn.
    assert prompts[0].group == hashlib.sha256(prompt_group("  write a HAIKU about   autumn. ")).hexdigest()
    assert (
        prompts[0].group
        == hashlib.sha256(prompt_group([{"role": "user", "content": "Write a haiku about autumn."}])).hexdigest()
    )
    file = artifacts / eval_set.path
    assert eval_set.path == f"eval_sets/{eval_set.pk}/prompts.jsonl"
    assert hashlib.sha256(file.read_bytes()).hexdigest() == eval_set.sha256
    lines = [json.loads(line) for line in file.read_text().splitlines()]
    assert lines[0] == {"id": "p1", "prompt": "Write a haiku about autumn.", "stratum": "usage", "category": "poetry"}
    assert "reference" not in lines[1] and lines[1]["messages"][0]["role"] == "system"
    assert lines[3]["id"] == "4"
    assert eval_set_verify(eval_set=eval_set) == file


def test_each_import_of_a_name_is_a_new_version_and_sets_are_immutable(project):
    first = import_set(project)
    second = import_set(project, lines=GOOD_LINES[:2])
    other = import_set(project, name="red team")
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert second.prompt_count == 2 and first.prompts.count() == 4
    with pytest.raises(ValueError, match="immutable"):
        first.save()


def test_a_bad_file_names_every_bad_line_and_imports_nothing_through_the_command(project, artifacts, settings):
    settings.TANDEM_IMPORT_MAX_TEXT_CHARS = 50
    path = artifacts.parent / "bad.jsonl"
    path.write_bytes(jsonl(BAD_LINES))
    err = StringIO()
    with pytest.raises(CommandError, match="10 bad line"):
        call_command("import_eval_set", str(path), project=project.name, name="golden", stderr=err)
    for line, reason in WANT_REASONS.items():
        assert f"line {line}: " in err.getvalue() and reason in err.getvalue()
    assert_nothing_written(artifacts)
    with pytest.raises(EvalSetInvalid) as caught:
        eval_set_import(project=project, name="golden", file=jsonl(BAD_LINES))
    assert caught.value.code == "invalid_eval_set" and caught.value.status == 400
    assert_every_bad_line(caught.value.extra["errors"])


def test_files_refused_as_a_whole(project, artifacts):
    for content, reason in [
        (b"", "the file has no prompts"),
        (b"\n\n", "the file has no prompts"),
        (gzip.compress(b"\x00" * 10) + b"junk", "cannot read the file"),
    ]:
        with pytest.raises(EvalSetInvalid) as caught:
            eval_set_import(project=project, name="golden", file=content)
        assert caught.value.extra["errors"][0]["line"] is None
        assert reason in caught.value.extra["errors"][0]["reason"]
    with pytest.raises(EvalSetInvalid, match="name"):
        eval_set_import(project=project, name="  ", file=jsonl(GOOD_LINES))
    assert_nothing_written(artifacts)


def test_gzip_and_text_streams_are_read_too(project):
    assert eval_set_import(project=project, name="gz", file=gzip.compress(jsonl(GOOD_LINES))).prompt_count == 4
    assert eval_set_import(project=project, name="text", file=StringIO(jsonl(GOOD_LINES).decode())).prompt_count == 4


def test_a_changed_prompt_file_is_caught(project, artifacts):
    eval_set = import_set(project)
    (artifacts / eval_set.path).write_text('{"id": "p1", "prompt": "something else"}\n')
    with pytest.raises(EvalSetTampered, match="changed after the import"):
        eval_set_verify(eval_set=eval_set)
    (artifacts / eval_set.path).unlink()
    with pytest.raises(EvalSetTampered, match="missing"):
        eval_set_verify(eval_set=eval_set)


# --- API ---------------------------------------------------------------------------------------------------------


def test_ml_engineers_and_leads_import_through_the_api(project, ml_engineer_client, lead_client):
    url = f"/api/v1/projects/{project.pk}/eval-sets/"
    response = ml_engineer_client.post(url, {"name": "golden", "file": upload(GOOD_LINES)}, format="multipart")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["version"], body["prompt_count"], body["created_by"]) == ("golden", 1, 4, "mle")
    assert body["sha256"] == EvalSet.objects.get(pk=body["id"]).sha256
    # The file as the request body, the name in the query string.
    response = lead_client.generic(
        "POST", f"{url}?name=golden", jsonl(GOOD_LINES[:3]), content_type="application/x-ndjson"
    )
    assert response.status_code == 201, response.json()
    assert (response.json()["version"], response.json()["prompt_count"]) == (2, 3)
    listed = ml_engineer_client.get(url).json()
    assert [(s["name"], s["version"]) for s in listed] == [("golden", 2), ("golden", 1)]


def test_a_bad_file_through_the_api_is_a_400_naming_every_line(project, ml_engineer_client, settings, artifacts):
    settings.TANDEM_IMPORT_MAX_TEXT_CHARS = 50
    url = f"/api/v1/projects/{project.pk}/eval-sets/"
    response = ml_engineer_client.post(url, {"name": "golden", "file": upload(BAD_LINES)}, format="multipart")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_eval_set" and "10 bad line(s)" in body["detail"]
    assert body["error_count"] == 10
    assert_every_bad_line(body["errors"])
    assert_nothing_written(artifacts)
    missing_name = ml_engineer_client.generic("POST", url, jsonl(GOOD_LINES), content_type="application/x-ndjson")
    assert missing_name.status_code == 400
    assert_nothing_written(artifacts)


def test_a_set_reads_with_its_prompts_as_json_and_csv(project, ml_engineer_client):
    eval_set = import_set(project, lines=[*GOOD_LINES, {"id": "f", "prompt": "=HYPERLINK(1)", "stratum": "red_team"}])
    body = ml_engineer_client.get(f"/api/v1/eval-sets/{eval_set.pk}/").json()
    assert body["prompt_count"] == 5 and [p["id"] for p in body["prompts"]] == ["p1", "p2", "p3", "4", "f"]
    assert body["prompts"][1]["reference"] == "4"
    response = ml_engineer_client.get(f"/api/v1/eval-sets/{eval_set.pk}/?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = response.content.decode()
    assert text.splitlines()[0] == "id,prompt,messages,stratum,category,reference,group"
    assert "'=HYPERLINK(1)" in text  # a formula is text in a spreadsheet (core.csv)


def test_annotators_never_reach_evaluation_sets(project, annotator_client, stranger_client, lead_client):
    eval_set = import_set(project)
    url = f"/api/v1/projects/{project.pk}/eval-sets/"
    assert annotator_client.get(url).status_code == 403
    assert annotator_client.get(f"/api/v1/eval-sets/{eval_set.pk}/").status_code == 403
    assert annotator_client.post(url, {"name": "x", "file": upload(GOOD_LINES)}, format="multipart").status_code == 403
    assert stranger_client.get(f"/api/v1/eval-sets/{eval_set.pk}/").status_code == 404
    assert stranger_client.get(url).status_code == 404
    assert lead_client.get(f"/api/v1/eval-sets/{eval_set.pk}/").status_code == 200
    assert EvalSet.objects.count() == 1


# --- Admin -------------------------------------------------------------------------------------------------------


def admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_imports_a_set_and_shows_its_prompts(project, ml_engineer):
    client = admin_client(ml_engineer)
    form = client.get("/admin/evaluation/evalset/add/")
    assert form.status_code == 200 and f'<option value="{project.pk}"' in form.content.decode()
    response = client.post(
        "/admin/evaluation/evalset/add/", {"project": project.pk, "name": "golden", "file": upload(GOOD_LINES)}
    )
    eval_set = EvalSet.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/evalset/{eval_set.pk}/change/")
    page = client.get(response["Location"]).content.decode()
    assert 'id="eval-prompts"' in page and "Write a haiku about autumn." in page and "red_team" in page


def test_a_bad_file_in_the_admin_lists_every_line_and_imports_nothing(project, ml_engineer, settings, artifacts):
    settings.TANDEM_IMPORT_MAX_TEXT_CHARS = 50
    response = admin_client(ml_engineer).post(
        "/admin/evaluation/evalset/add/", {"project": project.pk, "name": "golden", "file": upload(BAD_LINES)}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count('class="import-error"') == len(WANT_REASONS)
    assert "duplicate id &#x27;p1&#x27;: line 1 has it too" in page
    assert_nothing_written(artifacts)


def test_the_admin_import_is_for_leads_and_ml_engineers(project, annotator, lead):
    assert admin_client(annotator).get("/admin/evaluation/evalset/add/").status_code == 302  # not staff: login
    assert admin_client(lead).get("/admin/evaluation/evalset/add/").status_code == 200
