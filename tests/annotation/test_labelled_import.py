"""Labelled sources as a lead meets them: `import_labelled`, the API's job, the admin page; each format's good and bad
files, re-imports, the shared HH-RLHF file, and a source never served to an annotator."""

import gzip
import hashlib
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.models import Batch, Demonstration, ImportRecord, Item, Project
from core.models import Job
from tests.annotation.test_import import HH_FILE, hh_lines, needs_hh
from tests.core.jobs import follow_job, run_queued_jobs

pytestmark = pytest.mark.django_db


def write(path: Path, lines: list, *, gz: bool = False) -> Path:
    body = "".join((json.dumps(x, ensure_ascii=False) if isinstance(x, dict) else x) + "\n" for x in lines)
    if gz:
        path = path.with_suffix(path.suffix + ".gz")
        path.write_bytes(gzip.compress(body.encode()))
    else:
        path.write_text(body, encoding="utf-8")
    return path


def run_import(path: Path, source: str = "src", *extra: str, project: str = "Demo") -> str:
    out = StringIO()
    call_command("import_labelled", str(path), "--project", project, "--source", source, *extra, stdout=out)
    return out.getvalue()


def run_rejected(path: Path, source: str = "src", *extra: str, project: str = "Demo") -> tuple[str, str]:
    err = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(
            "import_labelled",
            str(path),
            "--project",
            project,
            "--source",
            source,
            *extra,
            stdout=StringIO(),
            stderr=err,
        )
    return str(caught.value), err.getvalue()


def item_line(n: int, preferred="a", **fields) -> dict:
    line = {
        "id": f"it-{n}",
        "prompt": f"Question {n}?",
        "response_a": {"model": "m1", "text": f"Answer A {n}."},
        "response_b": {"model": "m2", "text": f"Answer B {n}."},
        "preferred": preferred,
    }
    line.update(fields)
    return {k: v for k, v in line.items() if v is not ...}


def uf_line(n: int, scores=(7.5, 3.0, 5.0), **fields) -> dict:
    line = {
        "prompt": f"Write a haiku about {n}.",
        "completions": [{"model": f"m{i}", "text": f"Response {i} to {n}.", "score": s} for i, s in enumerate(scores)],
    }
    line.update(fields)
    return line


def demo_line(n: int) -> dict:
    return {
        "id": f"d-{n}",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": f"What is {n} + {n}?"},
            {"role": "assistant", "content": f"{2 * n}."},
        ],
    }


def nothing_written(project_name: str = "Demo") -> None:
    assert not Item.objects.filter(project__name=project_name).exists()
    assert not Batch.objects.filter(project__name=project_name, kind=Batch.Kind.LABELLED).exists()
    assert not Demonstration.objects.exists()


def source(name: str = "src", project: str = "Demo") -> Batch:
    return Batch.objects.get(project__name=project, name=name)


# --- The shared HH-RLHF file ---------------------------------------------------------------------------------------


@needs_hh
def test_hh_file_imports_as_a_closed_labelled_source_with_the_chosen_side():
    out = run_import(HH_FILE, "hh-rlhf")
    # Every line of the shared file is a usable pair: the rules exclude none (the report would list them).
    assert "Imported 1500 pair(s) into Demo / hh-rlhf (labelled source, hh_rlhf)" in out
    assert "excluded 0 line(s)" in out
    batch = source("hh-rlhf")
    assert (batch.kind, batch.status, batch.source_format) == ("labelled", "closed", "hh_rlhf")
    assert batch.closed_at is not None
    items = list(Item.objects.filter(batch=batch).order_by("id"))
    assert len(items) == 1500
    for line, item in zip(hh_lines(), items, strict=True):
        assert item.gold == ""
        assert item.labelled_choice in ("a", "b")
        chosen = item.response_a_text if item.labelled_choice == "a" else item.response_b_text
        rejected = item.response_b_text if item.labelled_choice == "a" else item.response_a_text
        assert line["chosen"].rstrip().endswith(chosen)
        assert line["rejected"].rstrip().endswith(rejected)
        assert item.messages[-1]["role"] == "user"
    # Which side is A is drawn, as in the item import: 1,500 fair coins land 650 to 850 heads but once in a million.
    assert 650 <= sum(item.labelled_choice == "a" for item in items) <= 850
    record = ImportRecord.objects.get(batch=batch)
    assert (record.status, record.lines, record.created) == ("imported", 1500, 1500)
    assert record.sha256 == hashlib.sha256(HH_FILE.read_bytes()).hexdigest()


@needs_hh
def test_hh_reimport_adds_nothing_and_another_format_is_refused(tmp_path):
    run_import(HH_FILE, "hh-rlhf")
    out = run_import(HH_FILE, "hh-rlhf", "--format", "hh_rlhf")
    assert "Imported 0 pair(s)" in out and "skipped 1500 already present" in out
    assert Item.objects.filter(batch__name="hh-rlhf").count() == 1500
    message, stderr = run_rejected(write(tmp_path / "items.jsonl", [item_line(1)]), "hh-rlhf")
    assert "nothing was imported" in message
    assert "holds hh_rlhf lines, this file items" in stderr
    assert Item.objects.filter(project__name="Demo").count() == 1500
    assert ImportRecord.objects.filter(status="rejected").count() == 1


@needs_hh
def test_the_same_pairs_in_a_judged_batch_and_a_source_stay_apart():
    call_command("import_items", str(HH_FILE), "--project", "Demo", "--batch", "judged", stdout=StringIO())
    assert "Imported 1500 pair(s)" in run_import(HH_FILE, "hh-rlhf")
    assert Item.objects.filter(batch__name="judged").count() == Item.objects.filter(batch__name="hh-rlhf").count()


# --- Each format: a good file ----------------------------------------------------------------------------------------


def test_items_with_preferred_and_votes(tmp_path):
    lines = [
        item_line(1, "a", votes={"a": 3, "b": 1}),
        item_line(2, "B", votes={"a": 0, "b": 2, "tie": 1}),
        item_line(3, "tie", votes={"a": 1, "b": 1, "tie": 2}),
        item_line(4, "b", stratum="adversarial", category="safety"),
    ]
    out = run_import(write(tmp_path / "items.jsonl", lines, gz=True), "past-labels")
    assert "Imported 4 pair(s)" in out
    assert source("past-labels").source_format == "items"
    rows = list(
        Item.objects.filter(batch__name="past-labels")
        .order_by("id")
        .values_list("external_id", "labelled_choice", "labelled_votes", "gold", "response_a_model", "stratum")
    )
    assert rows == [
        ("it-1", "a", {"a": 3, "b": 1}, "", "m1", ""),
        ("it-2", "b", {"a": 0, "b": 2, "tie": 1}, "", "m1", ""),
        ("it-3", "tie", {"a": 1, "b": 1, "tie": 2}, "", "m1", ""),
        ("it-4", "b", None, "", "m1", "adversarial"),
    ]


def test_ultrafeedback_takes_the_best_against_the_lowest_and_excludes_equal_scores(tmp_path):
    native = {
        "instruction": "Name a colour.",
        "completions": [
            {"model": "x", "response": "Blue.", "overall_score": 6},
            {"model": "y", "response": "Seven.", "overall_score": 2.5},
        ],
    }
    lines = [uf_line(1), uf_line(2, scores=(4, 4, 4)), native, uf_line(4, scores=(9, 9, 1, 1))]
    out = run_import(write(tmp_path / "uf.jsonl", lines), "uf")
    assert "Imported 3 pair(s)" in out and "excluded 1 line(s)" in out
    assert "line 2 excluded: every response has the same score (4): no preference to state" in out
    items = list(Item.objects.filter(batch__name="uf").order_by("id"))
    pairs = []
    for item in items:
        side = "a" if item.labelled_choice == "a" else "b"
        other = "b" if side == "a" else "a"
        pairs.append((getattr(item, f"response_{side}_text"), getattr(item, f"response_{other}_text")))
    # Best vs lowest; ties for best or lowest go to the first in the file.
    assert pairs == [
        ("Response 0 to 1.", "Response 1 to 1."),
        ("Blue.", "Seven."),
        ("Response 0 to 4.", "Response 2 to 4."),
    ]
    assert items[1].prompt == "Name a colour."
    record = ImportRecord.objects.get(batch__name="uf")
    assert record.warnings[:2] == [
        "1 line(s) excluded by the rules (docs/LABELLED_DATA.md).",
        "line 2 excluded: every response has the same score (4): no preference to state",
    ]


def test_demonstrations_become_items_with_an_accepted_demonstration(tmp_path):
    lines = [demo_line(1), {"prompt": "Say hi.", "response": "Hi!"}, demo_line(3)]
    out = run_import(write(tmp_path / "demos.jsonl", lines), "old-sft")
    assert "Imported 3 demonstration(s)" in out
    batch = source("old-sft")
    assert (batch.kind, batch.status, batch.source_format) == ("labelled", "closed", "demonstrations")
    demos = list(Demonstration.objects.filter(batch=batch).select_related("item").order_by("item_id"))
    assert [(d.text, d.status, d.writer_id, d.assignment_id) for d in demos] == [
        ("2.", "accepted", None, None),
        ("Hi!", "accepted", None, None),
        ("6.", "accepted", None, None),
    ]
    first, second = demos[0].item, demos[1].item
    assert first.messages == demo_line(1)["messages"][:-1] and first.prompt == ""
    assert (second.prompt, second.messages) == ("Say hi.", None)
    assert (first.response_a_text, first.response_b_text, first.labelled_choice, first.gold) == ("", "", "", "")
    # A re-import adds no item and no second demonstration.
    assert "Imported 0 demonstration(s)" in run_import(write(tmp_path / "again.jsonl", lines), "old-sft")
    assert Demonstration.objects.count() == 3


def test_a_reimport_adds_only_new_lines(tmp_path):
    run_import(write(tmp_path / "a.jsonl", [item_line(n) for n in range(3)]))
    out = run_import(write(tmp_path / "b.jsonl", [item_line(n) for n in range(5)]))
    assert "Imported 2 pair(s)" in out and "skipped 3 already present" in out
    assert Item.objects.filter(batch__name="src").count() == 5
    assert ImportRecord.objects.filter(batch__name="src", status="imported").count() == 2


def test_the_format_is_told_from_the_first_line_or_refused(tmp_path):
    assert "demonstrations" in run_import(write(tmp_path / "d.jsonl", [demo_line(1)]), "d")
    assert "ultrafeedback" in run_import(write(tmp_path / "u.jsonl", [uf_line(1)]), "u")
    _message, stderr = run_rejected(write(tmp_path / "x.jsonl", [{"prompt": "Hello?"}]), "x")
    assert "cannot tell the file's format from line 1" in stderr
    assert not Batch.objects.filter(name="x").exists()


def test_a_batch_that_is_not_a_labelled_source_is_refused(tmp_path):
    call_command(
        "import_items", str(write(tmp_path / "i.jsonl", [item_line(9, ...)])), "--project", "Demo", "--batch", "live"
    )
    _message, stderr = run_rejected(write(tmp_path / "l.jsonl", [item_line(1)]), "live")
    assert "is a comparison batch, not a labelled source" in stderr
    assert Item.objects.filter(batch__name="live").count() == 1
    assert not Item.objects.filter(labelled_choice__gt="").exists()


def test_the_item_imports_file_limits_hold(tmp_path, settings):
    settings.TANDEM_IMPORT_MAX_LINES = 3
    message, stderr = run_rejected(write(tmp_path / "big.jsonl", [item_line(n) for n in range(5)]))
    assert "more than the import limit of 3 lines" in message
    nothing_written()
    assert ImportRecord.objects.get().errors == [{"line": None, "reason": stderr.strip()}]


def test_json_report(project, tmp_path):
    out = run_import(write(tmp_path / "uf.jsonl", [uf_line(1), uf_line(2, scores=(2, 2))]), "uf", "--json")
    report = json.loads(out)
    assert (report["ok"], report["created"], report["source_format"], report["excluded_count"]) == (
        True,
        1,
        "ultrafeedback",
        1,
    )
    assert report["sha256"] == hashlib.sha256((tmp_path / "uf.jsonl").read_bytes()).hexdigest()


# --- Each format: a bad file is refused whole, every bad line named ----------------------------------------------

BAD_FILES = {
    "hh_rlhf": (
        [
            {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello", "rejected": "\n\nHuman: Hi\n\nAssistant: Go away"},
            {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello"},
            "{not json",
            {"chosen": "\n\nHuman: Hi\n\nAssistant: Same", "rejected": "\n\nHuman: Hi\n\nAssistant: Same"},
            {"chosen": "no dialogue", "rejected": "at all"},
        ],
        {2: "missing field: rejected", 3: "bad JSON", 4: "identical responses", 5: "share no dialogue"},
    ),
    "items": (
        [
            item_line(1),
            item_line(2, preferred=...),
            item_line(3, preferred="left"),
            item_line(4, "a", votes={"a": 1, "b": 2}),
            item_line(5, "tie", votes={"a": 2, "b": 1}),
            item_line(6, "a", votes={"a": -1, "b": 0}),
            item_line(7, "a", gold="a"),
            item_line(8, "a", votes={"a": 2, "b": 1, "both_bad": 1}),
            item_line(9, "a", response_b=...),
        ],
        {
            2: "missing field: preferred",
            3: "unknown preferred answer 'left'",
            4: "preferred is 'a' but the votes (a 1, b 2) say 'b'",
            5: "preferred is 'tie' but the votes (a 2, b 1) say 'a'",
            6: "votes.a must be a non-negative integer",
            7: "gold is for items annotators judge",
            8: "votes has unknown key(s) 'both_bad'",
            9: "missing field: response_b",
        },
    ),
    "ultrafeedback": (
        [
            uf_line(1),
            uf_line(2, scores=(5,)),
            {"prompt": "p", "completions": [{"text": "a", "score": 1}, {"text": "b", "score": "high"}]},
            {"prompt": "p", "completions": [{"text": "a", "score": 1}, {"text": "b"}]},
            {"completions": [{"text": "a", "score": 1}, {"text": "b", "score": 2}]},
            {"prompt": "p", "completions": [{"text": "", "score": 1}, {"text": "b", "score": 2}]},
            {"prompt": "p", "completions": "many"},
        ],
        {
            2: "completions has 1 response(s): a pair needs at least 2",
            3: "completions[1].score must be a number",
            4: "missing field: completions[1].score",
            5: "missing field: prompt (or messages)",
            6: "empty text: completions[0].text",
            7: "completions must be a list",
        },
    ),
    "demonstrations": (
        [
            demo_line(1),
            {"messages": [{"role": "user", "content": "Hi"}]},
            {"messages": [{"role": "assistant", "content": "Hi"}]},
            {"prompt": "Say hi."},
            {"prompt": "Say hi.", "response": "   "},
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}], "prompt": "x"},
            {"messages": [{"role": "narrator", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]},
        ],
        {
            2: "messages must list the conversation and then the assistant's answer",
            3: "messages must list the conversation and then the assistant's answer",
            4: "missing field: response",
            5: "empty text: response",
            6: "give either messages (the answer last) or prompt and response, not both",
            7: "messages[0].role is 'narrator'",
        },
    ),
}


@pytest.mark.parametrize("fmt", sorted(BAD_FILES))
def test_a_bad_file_is_refused_whole_with_every_bad_line_named(fmt, tmp_path):
    lines, reasons = BAD_FILES[fmt]
    message, stderr = run_rejected(write(tmp_path / f"{fmt}.jsonl", lines), "bad", "--format", fmt)
    assert f"{len(reasons)} bad line(s); nothing was imported" in message
    named = stderr.strip().splitlines()
    assert [int(line.split(":")[0].removeprefix("line ")) for line in named] == sorted(reasons)
    for line, reason in zip(named, (reasons[n] for n in sorted(reasons)), strict=True):
        assert reason in line, (line, reason)
    nothing_written()
    record = ImportRecord.objects.get()
    assert (record.status, record.batch, record.created) == ("rejected", None, 0)
    assert [e["line"] for e in record.errors] == sorted(reasons)


def test_a_bad_file_leaves_an_existing_source_as_it_was(tmp_path):
    run_import(write(tmp_path / "good.jsonl", [item_line(n) for n in range(3)]))
    before = list(Item.objects.order_by("id").values())
    run_rejected(write(tmp_path / "bad.jsonl", [item_line(10), item_line(11, preferred="x")]))
    assert list(Item.objects.order_by("id").values()) == before


# --- Never served ----------------------------------------------------------------------------------------------------


def test_a_labelled_source_is_served_to_nobody(project, annotator_client, tmp_path):
    """Only a labelled source in the project: `next` has nothing (the Python steps on SQLite, the SQL function on
    PostgreSQL; both serve open batches only)."""
    run_import(write(tmp_path / "items.jsonl", [item_line(n) for n in range(5)]), project=project.name)
    session = annotator_client.post(f"/api/v1/projects/{project.pk}/sessions/")
    assert session.status_code == 201, session.content
    answer = annotator_client.get(f"/api/v1/sessions/{session.json()['id']}/next/")
    assert answer.status_code == 204, answer.content
    assert not Item.objects.filter(assignments__isnull=False).exists()


# --- The API (a job) and the admin ------------------------------------------------------------------------------------


def api_url(project) -> str:
    return f"/api/v1/projects/{project.pk}/labelled/"


def upload(path: Path) -> SimpleUploadedFile:
    return SimpleUploadedFile(path.name, path.read_bytes())


def test_lead_imports_through_the_api_as_a_job(project, lead, lead_client, tmp_path):
    path = write(tmp_path / "uf.jsonl", [uf_line(1), uf_line(2, scores=(1, 1))], gz=True)
    response = lead_client.post(api_url(project), {"file": upload(path), "source": "uf"}, format="multipart")
    assert response.status_code == 202, response.content
    assert response.json()["kind"] == "labelled_import"
    assert not Item.objects.exists()  # nothing inside the request
    job = follow_job(lead_client, response)
    assert job["state"] == "succeeded", job
    result = job["result"]
    assert (result["ok"], result["created"], result["source_format"], result["batch"]) == (
        True,
        1,
        "ultrafeedback",
        "uf",
    )
    assert result["excluded"] == [
        {"line": 2, "reason": "every response has the same score (1): no preference to state"}
    ]
    assert job["created_by"] == lead.username
    assert ImportRecord.objects.get(pk=result["record_id"]).created_by == lead


def test_a_bad_file_through_the_api_fails_its_job_with_every_error(project, lead_client, tmp_path):
    path = write(tmp_path / "bad.jsonl", [item_line(1), item_line(2, preferred="?"), "{"])
    response = lead_client.post(
        api_url(project), {"file": upload(path), "source": "s", "format": "items"}, format="multipart"
    )
    job = follow_job(lead_client, response)
    assert job["state"] == "failed"
    assert job["error"]["code"] == "import_bad_lines"
    assert [e["line"] for e in job["result"]["errors"]] == [2, 3]
    nothing_written(project.name)


def test_the_api_refuses_another_format_at_once(project, lead_client, tmp_path):
    run_import(write(tmp_path / "d.jsonl", [demo_line(1)]), "sft", project=project.name)
    path = write(tmp_path / "i.jsonl", [item_line(1)])
    response = lead_client.post(
        api_url(project), {"file": upload(path), "source": "sft", "format": "items"}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "labelled_format_mismatch"
    assert not Job.objects.exists()
    bad = lead_client.post(api_url(project), {"file": upload(path), "source": "s", "format": "csv"}, format="multipart")
    assert bad.status_code == 400 and "format" in bad.json()


@pytest.mark.parametrize(
    ("who", "status"), [("annotator_client", 403), ("ml_engineer_client", 403), ("stranger_client", 404)]
)
def test_only_those_who_import_items_may_import_labelled_data(who, status, request, project, tmp_path):
    client = request.getfixturevalue(who)
    path = write(tmp_path / "items.jsonl", [item_line(1)])
    response = client.post(api_url(project), {"file": upload(path), "source": "s"}, format="multipart")
    assert response.status_code == status
    assert not Job.objects.exists() and not Item.objects.exists()


def test_admin_import_page_queues_the_job_and_shows_its_report(admin_client, project, tmp_path):
    page = reverse("admin:annotation_project_import_labelled", args=[project.pk])
    assert page in admin_client.get(reverse("admin:annotation_project_change", args=[project.pk])).content.decode()
    assert admin_client.get(page).status_code == 200
    path = write(tmp_path / "uf.jsonl", [uf_line(1), uf_line(2, scores=(3, 3)), uf_line(3)])
    response = admin_client.post(page, {"source": "uf", "format": "", "file": upload(path)})
    assert response.status_code == 302
    run_queued_jobs()
    html = admin_client.get(response["Location"]).content.decode()
    assert "Imported 2 pair(s) into Demo / uf (labelled source, ultrafeedback)" in html
    assert 'class="import-excluded"><td>2</td>' in html
    bad = write(tmp_path / "bad.jsonl", [uf_line(1), uf_line(2, scores=(3,))])
    response = admin_client.post(page, {"source": "uf2", "format": "ultrafeedback", "file": upload(bad)})
    run_queued_jobs()
    html = admin_client.get(response["Location"]).content.decode()
    assert "Rejected: nothing was imported" in html
    assert "completions has 1 response(s)" in html
    assert not Batch.objects.filter(name="uf2").exists()


def test_admin_keeps_a_labelled_source_closed(admin_client, project, tmp_path):
    run_import(write(tmp_path / "items.jsonl", [item_line(1)]), project=project.name)
    batch = source()
    html = admin_client.get(reverse("admin:annotation_batch_change", args=[batch.pk])).content.decode()
    assert 'name="status"' not in html  # read-only: reopened, it would be served
    assert Project.objects.get(pk=project.pk).batches.get().status == "closed"
