"""Prompt-only items for demonstration batches, through the existing item import: the command (`--kind
demonstration`), the API (`kind`) and the admin's import page. Prompts only there, responses only elsewhere."""

import json
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.models import Batch, ImportRecord, Item
from tests.core.jobs import follow_job, run_queued_jobs
from tests.factories import BatchFactory

pytestmark = pytest.mark.django_db


def prompt(n: int, **fields) -> dict:
    line = {"id": f"p-{n}", "prompt": f"Write a short poem about the number {n}.", "stratum": "usage"}
    line.update(fields)
    return {k: v for k, v in line.items() if v is not ...}


def comparison(n: int) -> dict:
    return {
        "id": f"c-{n}",
        "prompt": f"Question {n}?",
        "response_a": {"model": "m1", "text": f"Answer {n}."},
        "response_b": {"model": "m2", "text": f"Another answer {n}."},
    }


def jsonl(*lines) -> bytes:
    return "".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines).encode()


def command(tmp_path, lines, *extra, batch="demos") -> str:
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(jsonl(*lines))
    out = StringIO()
    call_command("import_items", str(path), "--project", "Demo", "--batch", batch, *extra, stdout=out)
    return out.getvalue()


def command_refused(tmp_path, lines, *extra, batch="demos") -> tuple[str, str]:
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(jsonl(*lines))
    err = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(
            "import_items", str(path), "--project", "Demo", "--batch", batch, *extra, stdout=StringIO(), stderr=err
        )
    return str(caught.value), err.getvalue()


# --- The command -------------------------------------------------------------------------------------------------


def test_the_command_makes_a_demonstration_batch_of_prompts(project, tmp_path):
    conversation = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a prime."},
    ]
    lines = [prompt(1), prompt(2, category="poetry"), {"id": "m-1", "messages": conversation}, prompt(3, id=...)]
    out = command(tmp_path, lines, "--kind", "demonstration")
    assert "Imported 4 item(s) into Demo / demos" in out
    batch = Batch.objects.get(project=project, name="demos")
    assert batch.kind == Batch.Kind.DEMONSTRATION
    items = {item.external_id: item for item in Item.objects.filter(batch=batch)}
    assert set(items) == {"p-1", "p-2", "m-1", ""}
    assert items["p-2"].category == "poetry"
    assert items["m-1"].messages == conversation and items["m-1"].prompt == ""
    for item in items.values():
        assert (item.response_a_text, item.response_b_text, item.gold) == ("", "", "")
    assert items[""].dedupe_key.startswith("sha256:")
    assert ImportRecord.objects.get().created == 4


def test_a_reimport_into_the_demonstration_batch_skips_what_is_there(project, tmp_path):
    command(tmp_path, [prompt(1), prompt(2)], "--kind", "demonstration")
    # Without --kind the existing batch's kind decides: prompts are still what it takes.
    out = command(tmp_path, [prompt(1), prompt(2), prompt(3)])
    assert "Imported 1 item(s)" in out and "skipped 2 already present" in out
    assert Item.objects.filter(batch__name="demos").count() == 3


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"response_a": {"text": "An answer."}}, "response_a"),
        ({"response_b": {"text": "An answer."}}, "response_b"),
        ({"gold": "a"}, "gold"),
        ({"chosen": "x", "rejected": "y"}, "chosen, rejected"),
    ],
)
def test_responses_or_gold_in_a_demonstration_batch_are_refused_with_the_line_named(project, tmp_path, extra, named):
    summary, errors = command_refused(tmp_path, [prompt(1), prompt(2, **extra), prompt(3)], "--kind", "demonstration")
    assert "1 bad line(s); nothing was imported" in summary
    assert f"line 2: a demonstration batch takes prompts only (annotators write the response): remove {named}" in errors
    assert not Item.objects.exists()
    assert not Batch.objects.filter(name="demos").exists()  # the batch the import would have made is gone too
    assert ImportRecord.objects.get().status == ImportRecord.Status.REJECTED


def test_every_bad_prompt_line_is_listed(project, tmp_path):
    lines = [prompt(1, prompt=""), "{oops", prompt(3, stratum="organic"), {"id": "x"}, prompt(5)]
    _, errors = command_refused(tmp_path, lines, "--kind", "demonstration")
    assert "line 1: empty text: prompt" in errors
    assert "line 2: bad JSON" in errors
    assert "line 3: unknown stratum 'organic'" in errors
    assert "line 4: missing field: prompt (or messages)" in errors
    assert "line 5" not in errors


def test_prompt_only_lines_are_refused_for_a_comparison_batch_as_before(project, tmp_path):
    _, errors = command_refused(tmp_path, [prompt(1)])
    assert "line 1: missing field: response_a" in errors
    _, errors = command_refused(tmp_path, [prompt(1)], "--kind", "comparison")
    assert "line 1: missing field: response_a" in errors
    assert not Item.objects.exists()


def test_an_existing_batch_of_another_kind_is_refused(project, tmp_path):
    command(tmp_path, [comparison(1)], batch="pairs")
    summary, errors = command_refused(tmp_path, [prompt(1)], "--kind", "demonstration", batch="pairs")
    assert "'pairs' is a comparison batch, not a demonstration one: name a new batch for this file" in errors
    assert "Rejected" in summary
    assert Item.objects.count() == 1
    assert Batch.objects.get(name="pairs").kind == Batch.Kind.COMPARISON
    command(tmp_path, [prompt(1)], "--kind", "demonstration", batch="demos")
    _, errors = command_refused(tmp_path, [comparison(2)], "--kind", "comparison", batch="demos")
    assert "'demos' is a demonstration batch, not a comparison one" in errors
    # Without --kind, comparison lines into the demonstration batch are refused line by line.
    _, errors = command_refused(tmp_path, [comparison(2)], batch="demos")
    assert "line 1: a demonstration batch takes prompts only" in errors


def test_the_command_offers_only_the_kinds_an_import_may_make(project, tmp_path):
    with pytest.raises(CommandError, match="invalid choice: 'labelled'"):
        command(tmp_path, [prompt(1)], "--kind", "labelled")


# --- The API -----------------------------------------------------------------------------------------------------


def import_url(project) -> str:
    return reverse("annotation:item-import", args=[project.pk])


def test_a_lead_imports_prompts_through_the_api(project, lead_client):
    upload = SimpleUploadedFile("prompts.jsonl", jsonl(prompt(1), prompt(2)))
    response = lead_client.post(
        import_url(project), {"file": upload, "batch": "api-demos", "kind": "demonstration"}, format="multipart"
    )
    job = follow_job(lead_client, response)
    assert job["state"] == "succeeded", job
    assert (job["result"]["created"], job["result"]["kind"]) == (2, "demonstration")
    assert Batch.objects.get(name="api-demos").kind == Batch.Kind.DEMONSTRATION


def test_the_api_refuses_responses_in_a_demonstration_batch_naming_the_line(project, lead_client):
    upload = SimpleUploadedFile("prompts.jsonl", jsonl(prompt(1), comparison(2)))
    response = lead_client.post(
        import_url(project), {"file": upload, "batch": "api-demos", "kind": "demonstration"}, format="multipart"
    )
    job = follow_job(lead_client, response)
    assert job["state"] == "failed"
    assert job["error"]["code"] == "import_bad_lines"
    assert job["result"]["errors"] == [
        {
            "line": 2,
            "reason": "a demonstration batch takes prompts only (annotators write the response): "
            "remove response_a, response_b",
        }
    ]
    assert not Item.objects.exists() and not Batch.objects.filter(name="api-demos").exists()


def test_the_api_refuses_a_batch_of_another_kind_at_once(project, lead_client):
    BatchFactory(project=project, name="pairs")
    upload = SimpleUploadedFile("prompts.jsonl", jsonl(prompt(1)))
    response = lead_client.post(
        import_url(project), {"file": upload, "batch": "pairs", "kind": "demonstration"}, format="multipart"
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "import_batch_kind"
    assert body["errors"] == [
        {
            "line": None,
            "reason": "batch 'pairs' is a comparison batch, not a demonstration one: name a new batch for this file",
        }
    ]
    assert run_queued_jobs() == []  # nothing was queued
    assert not Item.objects.exists()


def test_the_api_refuses_an_unknown_kind(project, lead_client):
    upload = SimpleUploadedFile("prompts.jsonl", jsonl(prompt(1)))
    response = lead_client.post(
        import_url(project), {"file": upload, "batch": "x", "kind": "labelled"}, format="multipart"
    )
    assert response.status_code == 400
    assert "kind" in response.json()


# --- The admin ---------------------------------------------------------------------------------------------------


def test_the_admin_import_page_makes_a_demonstration_batch(client, lead, project):
    client.force_login(lead)
    url = reverse("admin:annotation_project_import", args=[project.pk])
    page = client.get(url).content.decode()
    assert '<option value="demonstration">Demonstration</option>' in page
    upload = SimpleUploadedFile("prompts.jsonl", jsonl(prompt(1), prompt(2), prompt(3)))
    response = client.post(url, {"batch": "admin-demos", "file": upload, "kind": "demonstration"})
    assert response.status_code == 302, response.content
    run_queued_jobs()
    html = client.get(response["Location"]).content.decode()
    assert 'data-state="succeeded"' in html
    assert "Imported 3 item(s) into Demo / admin-demos" in html
    assert Batch.objects.get(name="admin-demos").kind == Batch.Kind.DEMONSTRATION


def test_the_admin_import_page_refuses_a_batch_of_another_kind(client, lead, project):
    BatchFactory(project=project, name="pairs")
    client.force_login(lead)
    url = reverse("admin:annotation_project_import", args=[project.pk])
    upload = SimpleUploadedFile("prompts.jsonl", jsonl(prompt(1)))
    response = client.post(url, {"batch": "pairs", "file": upload, "kind": "demonstration"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "is a comparison batch, not a demonstration one" in html
    assert not Item.objects.exists()
