"""Item import as a lead meets it: the import_items command, the API endpoint, all-or-nothing, re-imports, mix report."""

import gzip
import json
import os
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import override_settings

from annotation.models import Batch, ImportRecord, Item, Project
from core.models import Job
from tests.core.jobs import follow_job
from tests.factories import ProjectFactory

HH_NAME = "hh-rlhf-harmless-base-test-part1.jsonl.gz"
# ../shared beside the checkout, else TANDEM_SHARED_DIR, else the shared folder of the machines Tandem is built on.
HH_FILE = next(
    (
        path
        for folder in (
            Path(__file__).resolve().parents[3] / "shared",
            Path(os.environ.get("TANDEM_SHARED_DIR", "/work/shared")),
        )
        if (path := folder / "data" / HH_NAME).exists()
    ),
    Path(__file__).resolve().parents[3] / "shared" / "data" / HH_NAME,
)
HH_ASSISTANT = "\n\nAssistant:"

needs_hh = pytest.mark.skipif(not HH_FILE.exists(), reason=f"{HH_FILE} is missing (../shared is not checked out)")


def good(n: int, **fields) -> dict:
    line = {
        "id": f"item-{n}",
        "prompt": f"Question number {n}?",
        "response_a": {"model": "sft-7b", "text": f"Short answer {n}."},
        "response_b": {"model": "sft-7b-t0.9", "text": f"A longer answer to question {n}."},
        "stratum": "usage",
    }
    line.update(fields)
    return {k: v for k, v in line.items() if v is not ...}


def write(path: Path, lines: list, *, gz: bool = False) -> Path:
    """Lines may be dicts (dumped as JSON) or raw strings (written as they are)."""
    body = "".join((json.dumps(x, ensure_ascii=False) if isinstance(x, dict) else x) + "\n" for x in lines)
    if gz:
        path = path.with_suffix(path.suffix + ".gz")
        path.write_bytes(gzip.compress(body.encode()))
    else:
        path.write_text(body, encoding="utf-8")
    return path


def run_import(path: Path, project: str = "Demo", batch: str = "b1", *extra: str) -> str:
    out = StringIO()
    call_command("import_items", str(path), "--project", project, "--batch", batch, *extra, stdout=out)
    return out.getvalue()


def run_rejected(path: Path, project: str = "Demo", batch: str = "b1") -> tuple[str, str]:
    err = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("import_items", str(path), "--project", project, "--batch", batch, stdout=StringIO(), stderr=err)
    return str(caught.value), err.getvalue()


def hh_lines() -> list[dict]:
    with gzip.open(HH_FILE, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# --- The HH-RLHF file through the command ------------------------------------------------------


@needs_hh
@pytest.mark.django_db
def test_hh_file_imports_1500_multi_turn_items():
    out = run_import(HH_FILE, "Harmless", "hh-1")
    assert "Imported 1500 item(s)" in out
    assert "Created project 'Harmless'" in out
    project = Project.objects.get(name="Harmless")
    items = list(Item.objects.filter(project=project).order_by("id"))
    assert len(items) == 1500
    assert all(item.batch.name == "hh-1" for item in items[:5])
    assert all(item.messages and item.messages[-1]["role"] == "user" for item in items)
    assert sum(len(item.messages) > 1 for item in items) > 500  # multi-turn dialogues survive as turns
    assert all(item.gold == "" for item in items)  # no gold without --keep-hh-gold
    record = ImportRecord.objects.get(project=project)
    assert (record.status, record.lines, record.created) == ("imported", 1500, 1500)


@needs_hh
@pytest.mark.django_db
def test_hh_prompt_is_the_dialogue_before_the_last_assistant_turn():
    run_import(HH_FILE, "Harmless", "hh-1")
    items = list(Item.objects.filter(project__name="Harmless").order_by("id"))
    for number, (source, item) in enumerate(zip(hh_lines(), items, strict=True), start=1):
        chosen, rejected = source["chosen"], source["rejected"]
        cut = chosen.rfind(HH_ASSISTANT)
        if number == 1255:  # the two sides diverge a turn early: the prompt stops at the last shared turn
            assert rejected.startswith(chosen[: rejected.rfind(HH_ASSISTANT)])
            cut = rejected.rfind(HH_ASSISTANT)
        prompt = chosen[:cut]
        # The turns, in order and with their speakers, are the dialogue before the cut (whitespace aside).
        # Real HH lines sometimes have two Assistant turns in a row; they stay two turns.
        speaker = {"user": "Human", "assistant": "Assistant"}
        rebuilt = "".join(f"\n\n{speaker[m['role']]}: {m['content']}" for m in item.messages)
        assert rebuilt.split() == prompt.split(), number
        assert item.messages[0]["role"] == item.messages[-1]["role"] == "user"
        replies = {chosen[cut + len(HH_ASSISTANT) :].strip(), rejected[cut + len(HH_ASSISTANT) :].strip()}
        assert {item.response_a_text, item.response_b_text} == replies, number


@needs_hh
@pytest.mark.django_db
def test_hh_empty_final_turns_are_kept_as_empty_responses():
    run_import(HH_FILE, "Harmless", "hh-1")
    items = Item.objects.filter(project__name="Harmless").order_by("id")
    empty = [n for n, item in enumerate(items, start=1) if "" in (item.response_a_text, item.response_b_text)]
    assert empty == [87, 517, 926, 1104]


@needs_hh
@pytest.mark.django_db
def test_hh_gold_is_kept_only_on_request_and_names_the_chosen_side():
    run_import(HH_FILE, "Harmless", "hh-1", "--keep-hh-gold")
    items = list(Item.objects.filter(project__name="Harmless").order_by("id"))
    for source, item in zip(hh_lines(), items, strict=True):
        assert item.gold in ("a", "b")
        gold_text = item.response_a_text if item.gold == "a" else item.response_b_text
        assert source["chosen"].rstrip().endswith(gold_text)
    # Which side is A is drawn per item: 1,500 fair coins land 650 to 850 heads except once in ~a million runs.
    chosen_is_a = sum(item.gold == "a" for item in items)
    assert 650 <= chosen_is_a <= 850


@needs_hh
@pytest.mark.django_db
def test_hh_reimport_skips_everything_despite_the_new_shuffle():
    run_import(HH_FILE, "Harmless", "hh-1")
    out = run_import(HH_FILE, "Harmless", "hh-2")
    assert "Imported 0 item(s)" in out
    assert "skipped 1500 already present" in out
    assert Item.objects.filter(project__name="Harmless").count() == 1500
    assert not Item.objects.filter(batch__name="hh-2").exists()


# --- Invalid files import nothing ----------------------------------------------------------------

BAD_CASES = {
    "bad json": ('{"id": "x", "prompt": "unterminated', "bad JSON"),
    "not an object": ("[1, 2, 3]", "expected a JSON object"),
    "missing field": (good(99, response_b=...), "missing field: response_b"),
    "empty text": (good(99, prompt=" \n "), "empty text: prompt"),
    "unknown stratum": (good(99, stratum="organic"), "unknown stratum 'organic'"),
    "identical responses": (
        good(99, response_b={"model": "other", "text": "Short answer 99."}),
        "identical responses",
    ),
    "messages with a bad role": (
        good(99, prompt=..., messages=[{"role": "narrator", "content": "Once upon a time"}]),
        "messages[0].role is 'narrator'",
    ),
    "messages ending with the assistant": (
        good(99, prompt=..., messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]),
        "last message must be the user's",
    ),
    "both prompt and messages": (
        good(99, messages=[{"role": "user", "content": "Hi"}]),
        "either prompt or messages, not both",
    ),
    "unknown gold answer": (good(99, gold="left"), "unknown gold answer"),
}


@pytest.fixture
def earlier_import(project, tmp_path):
    """Ten items from a previous, good import into batch b1."""
    run_import(write(tmp_path / "earlier.jsonl", [good(n, id=f"old-{n}") for n in range(10)]))
    return list(Item.objects.filter(project=project).order_by("id").values())


def assert_untouched(project, earlier):
    assert list(Item.objects.filter(project=project).order_by("id").values()) == earlier


@pytest.mark.parametrize("case", BAD_CASES)
def test_a_bad_line_rejects_the_whole_file(case, project, earlier_import, tmp_path):
    bad, reason = BAD_CASES[case]
    path = write(tmp_path / "bad.jsonl", [good(1), good(2), bad, good(4)])
    message, stderr = run_rejected(path)
    assert "1 bad line(s); nothing was imported" in message
    assert stderr.startswith("line 3: ")
    assert reason in stderr
    assert_untouched(project, earlier_import)
    record = ImportRecord.objects.get(status="rejected")
    assert record.created == 0
    assert record.errors[0]["line"] == 3
    assert reason in record.errors[0]["reason"]


def test_a_rejected_file_leaves_no_new_batch_behind(project, tmp_path):
    path = write(tmp_path / "bad.jsonl", [good(1), good(2, stratum="organic")])
    run_rejected(path, batch="fresh")
    assert not Batch.objects.filter(project=project, name="fresh").exists()
    assert not Item.objects.exists()
    assert ImportRecord.objects.get().status == "rejected"


def test_every_bad_line_is_listed_with_its_number(project, earlier_import, tmp_path):
    lines = [good(1), "not json", good(3), good(4, prompt=""), good(5, stratum="x"), good(6), ""]
    lines += [good(8, response_a=...)]
    message, stderr = run_rejected(write(tmp_path / "bad.jsonl", lines))
    assert "4 bad line(s)" in message
    assert [row.split(":", 1)[0] for row in stderr.splitlines()] == ["line 2", "line 4", "line 5", "line 8"]
    record = ImportRecord.objects.get(status="rejected")
    assert [e["line"] for e in record.errors] == [2, 4, 5, 8]
    assert_untouched(project, earlier_import)


@override_settings(TANDEM_IMPORT_CHUNK_SIZE=10)
def test_good_lines_before_a_bad_one_are_not_imported(project, earlier_import, tmp_path):
    # 35 good lines fill three insert chunks before line 36 turns out bad: all of them must roll back.
    lines = [good(n) for n in range(35)] + [good(35, stratum="organic")] + [good(n) for n in range(36, 40)]
    _, stderr = run_rejected(write(tmp_path / "bad.jsonl", lines))
    assert "line 36: unknown stratum" in stderr
    assert_untouched(project, earlier_import)
    assert not Item.objects.filter(external_id="item-0").exists()


@override_settings(TANDEM_IMPORT_MAX_TEXT_CHARS=50)
def test_a_field_over_the_size_limit_is_a_bad_line(project, earlier_import, tmp_path):
    lines = [good(1), good(2, response_b={"model": "m", "text": "x" * 51}), good(3, response_a={"text": "y" * 50})]
    _, stderr = run_rejected(write(tmp_path / "big-field.jsonl", lines))
    assert stderr.strip() == "line 2: response_b.text is 51 characters, over the limit of 50"
    assert_untouched(project, earlier_import)


@override_settings(TANDEM_IMPORT_MAX_FILE_BYTES=2_000)
def test_a_file_over_the_size_limit_is_refused(project, earlier_import, tmp_path):
    path = write(tmp_path / "big.jsonl", [good(n) for n in range(40)])
    assert path.stat().st_size > 2_000
    message, stderr = run_rejected(path)
    assert stderr.startswith("the file is larger than the import limit of 2,000 bytes")
    assert "nothing was imported" in message
    assert_untouched(project, earlier_import)


@override_settings(TANDEM_IMPORT_MAX_FILE_BYTES=2_000)
def test_the_size_limit_counts_uncompressed_bytes(project, tmp_path):
    # A small gzip that inflates past the limit is refused too: the limit protects the server, not the upload.
    path = write(tmp_path / "big.jsonl", [good(n) for n in range(40)], gz=True)
    assert path.stat().st_size < 2_000
    _, stderr = run_rejected(path)
    assert "larger than the import limit" in stderr
    assert not Item.objects.exists()


def test_truncated_gzip_is_a_clear_error(project, earlier_import, tmp_path):
    whole = write(tmp_path / "items.jsonl", [good(n) for n in range(200)], gz=True).read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    message, stderr = run_rejected(cut)
    assert "cannot read the file" in stderr
    assert "end-of-stream" in stderr  # Python's words for a gzip stream that stops early
    assert "nothing was imported" in message
    assert_untouched(project, earlier_import)


def test_the_rejected_import_record_keeps_the_errors(project, lead, lead_client, tmp_path):
    path = write(tmp_path / "bad.jsonl", [good(1), "{", good(3, stratum="organic")])
    follow_job(
        lead_client, lead_client.post(import_url(project), {"file": upload(path), "batch": "b1"}, format="multipart")
    )
    record = ImportRecord.objects.get()
    assert record.status == ImportRecord.Status.REJECTED
    assert record.filename == "bad.jsonl"
    assert record.created_by == lead
    assert record.lines == 3
    assert [e["line"] for e in record.errors] == [2, 3]


# --- Formats ------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_plain_and_gzip_files_import_the_same(gz, project, tmp_path):
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hey"},
        {"role": "user", "content": "Café ✓?"},
    ]
    lines = [good(1), good(2, prompt=..., messages=messages, category="chat", gold="tie"), good(3, id=...)]
    run_import(write(tmp_path / "items.jsonl", lines, gz=gz))
    items = list(Item.objects.filter(project=project).order_by("id"))
    assert [i.external_id for i in items] == ["item-1", "item-2", ""]
    assert items[1].messages == messages
    assert items[1].prompt == ""
    assert (items[1].category, items[1].gold, items[1].is_gold) == ("chat", "tie", True)
    assert (items[0].response_a_model, items[0].response_b_model) == ("sft-7b", "sft-7b-t0.9")
    assert items[2].dedupe_key.startswith("sha256:")


def test_blank_lines_are_ignored_but_counted(project, tmp_path):
    out = run_import(write(tmp_path / "items.jsonl", [good(1), "", "   ", good(2)]))
    assert "Imported 2 item(s)" in out
    assert "4 line(s)" in out


def test_missing_file_is_a_command_error(project, tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_items", str(tmp_path / "nope.jsonl"), "--project", "Demo", "--batch", "b1")


def test_closed_batch_refuses_imports(project, tmp_path):
    run_import(write(tmp_path / "a.jsonl", [good(1)]))
    Batch.objects.filter(name="b1").update(status=Batch.Status.CLOSED)
    _, stderr = run_rejected(write(tmp_path / "b.jsonl", [good(2)]))
    assert stderr.startswith("batch 'b1' is closed")
    assert Item.objects.count() == 1


def test_json_report_from_the_command(project, tmp_path):
    out = run_import(write(tmp_path / "items.jsonl", [good(1), good(2)]), "Demo", "b1", "--json")
    report = json.loads(out)
    assert (report["ok"], report["created"], report["skipped"], report["lines"]) == (True, 2, 0, 2)


# --- Re-imports ---------------------------------------------------------------------------------


def test_same_file_twice_adds_no_duplicates_and_says_so(project, tmp_path):
    path = write(tmp_path / "items.jsonl", [good(n) for n in range(5)] + [good(n, id=...) for n in range(5, 8)])
    first = run_import(path)
    second = run_import(path, "Demo", "b2")
    assert "Imported 8 item(s)" in first
    assert "Imported 0 item(s) into Demo / b2; skipped 8 already present" in second
    assert Item.objects.filter(project=project).count() == 8
    assert ImportRecord.objects.filter(status="imported").order_by("created_at").last().skipped == 8


def test_reimport_with_some_new_lines_adds_only_those(project, tmp_path):
    run_import(write(tmp_path / "v1.jsonl", [good(n) for n in range(5)]))
    out = run_import(write(tmp_path / "v2.jsonl", [good(n) for n in range(8)]))
    assert "Imported 3 item(s)" in out
    assert "skipped 5 already present" in out
    assert Item.objects.count() == 8


@override_settings(TANDEM_IMPORT_CHUNK_SIZE=2)
def test_duplicates_within_one_file_are_skipped(project, tmp_path):
    # Duplicates both inside one insert chunk and across chunks, by id and by content.
    no_id = good(50, id=...)
    lines = [good(1), good(1), good(2), no_id, good(3), dict(no_id), good(1)]
    out = run_import(write(tmp_path / "dups.jsonl", lines))
    assert "Imported 4 item(s)" in out
    assert "skipped 3 already present" in out
    assert Item.objects.count() == 4


def test_the_same_file_can_go_into_another_project(project, tmp_path):
    path = write(tmp_path / "items.jsonl", [good(n) for n in range(3)])
    run_import(path)
    run_import(path, "Other", "b1")
    assert Item.objects.filter(project__name="Other").count() == 3
    assert Item.objects.count() == 6


# --- Stratum mix ------------------------------------------------------------------------------


def mixed(usage: int, synthetic: int, adversarial: int, unspecified: int = 0) -> list[dict]:
    strata = ["usage"] * usage + ["synthetic"] * synthetic + ["adversarial"] * adversarial + [...] * unspecified
    return [good(n, stratum=s) for n, s in enumerate(strata)]


def test_usual_mix_reports_counts_without_warnings(project, tmp_path):
    out = run_import(write(tmp_path / "mix.jsonl", mixed(65, 22, 13)))
    assert "Stratum mix: usage 65 (65%), synthetic 22 (22%), adversarial 13 (13%)" in out
    assert "Warning" not in out
    assert ImportRecord.objects.get().warnings == []


def test_mix_far_from_usual_warns(project, tmp_path):
    out = run_import(write(tmp_path / "mix.jsonl", mixed(95, 5, 0)))
    assert "Warning: Stratum mix: usage is 95%" in out
    assert "Warning: Stratum mix: synthetic is 5%" in out
    assert "Warning: Stratum mix: adversarial is 0%" in out
    record = ImportRecord.objects.get()
    assert record.strata == {"usage": 95, "synthetic": 5}
    assert len(record.warnings) == 3


def test_items_without_stratum_are_counted_and_flagged(project, tmp_path):
    out = run_import(write(tmp_path / "mix.jsonl", mixed(13, 4, 2, unspecified=1)))
    assert "unspecified 1" in out
    assert "Warning: 1 of 20 item(s) have no stratum" in out
    assert "Warning: Stratum mix" not in out  # 13/4/2 of the 19 with a stratum is the usual mix


# --- The API --------------------------------------------------------------------------------


def import_url(project) -> str:
    return f"/api/v1/projects/{project.pk}/imports/"


def upload(path: Path) -> SimpleUploadedFile:
    return SimpleUploadedFile(path.name, path.read_bytes())


def test_lead_imports_through_the_api(project, lead, lead_client, tmp_path):
    path = write(tmp_path / "items.jsonl", mixed(13, 4, 3), gz=True)
    response = lead_client.post(import_url(project), {"file": upload(path), "batch": "api"}, format="multipart")
    assert response.status_code == 202, response.content
    queued = response.json()
    assert (queued["kind"], queued["state"], queued["project"], queued["result"]) == (
        "items_import",
        "queued",
        project.pk,
        None,
    )
    assert not Item.objects.exists()  # nothing is imported inside the request
    job = follow_job(lead_client, response)
    assert job["state"] == "succeeded", job
    assert job["error"] is None
    assert job["created_by"] == lead.username
    assert job["started_at"] and job["finished_at"] >= job["started_at"] >= job["created_at"]
    assert job["progress"]["unit"] == "bytes"
    assert job["progress"]["done"] == job["progress"]["total"] == path.stat().st_size
    assert job["progress"]["fraction"] == 1.0
    body = job["result"]
    assert (body["ok"], body["created"], body["skipped"], body["batch"]) == (True, 20, 0, "api")
    assert body["strata"] == {"usage": 13, "synthetic": 4, "adversarial": 3}
    assert body["errors"] == []
    assert ImportRecord.objects.get(pk=body["record_id"]).created == 20
    assert Item.objects.filter(batch__name="api").count() == 20


@needs_hh
def test_lead_imports_hh_with_gold_through_the_api(project, lead_client):
    response = lead_client.post(
        import_url(project),
        {"file": upload(HH_FILE), "batch": "hh", "keep_hh_gold": "true"},
        format="multipart",
    )
    assert follow_job(lead_client, response)["result"]["created"] == 1500
    assert not Item.objects.filter(project=project, gold="").exists()


def test_a_bad_file_through_the_api_fails_its_job_with_every_error(project, lead_client, tmp_path):
    path = write(tmp_path / "bad.jsonl", [good(1), "{oops", good(3), good(4, stratum="organic")])
    response = lead_client.post(import_url(project), {"file": upload(path), "batch": "b1"}, format="multipart")
    job = follow_job(lead_client, response)
    assert job["state"] == "failed"
    assert job["error"] == {
        "code": "import_bad_lines",
        "detail": "Rejected bad.jsonl: 2 bad line(s); nothing was imported.",
    }
    body = job["result"]
    assert body["ok"] is False
    assert body["error_count"] == 2
    assert [e["line"] for e in body["errors"]] == [2, 4]
    assert "unknown stratum" in body["errors"][1]["reason"]
    assert body["created"] == 0
    assert not Item.objects.exists()


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@override_settings(FILE_UPLOAD_MAX_MEMORY_SIZE=100)
def test_api_upload_spooled_to_disk_imports_the_same(gz, project, lead_client, tmp_path):
    # Uploads over FILE_UPLOAD_MAX_MEMORY_SIZE reach the service as a temporary file, not a BytesIO.
    path = write(tmp_path / "items.jsonl", [good(n) for n in range(30)], gz=gz)
    response = lead_client.post(import_url(project), {"file": upload(path), "batch": "disk"}, format="multipart")
    assert follow_job(lead_client, response)["state"] == "succeeded"
    assert Item.objects.filter(batch__name="disk").count() == 30


def test_api_reimport_reports_skipped(project, lead_client, tmp_path):
    path = write(tmp_path / "items.jsonl", [good(n) for n in range(4)])
    follow_job(
        lead_client, lead_client.post(import_url(project), {"file": upload(path), "batch": "b1"}, format="multipart")
    )
    response = lead_client.post(import_url(project), {"file": upload(path), "batch": "b1"}, format="multipart")
    result = follow_job(lead_client, response)["result"]
    assert (result["created"], result["skipped"]) == (0, 4)


def test_api_import_needs_a_file_and_a_batch(project, lead_client):
    response = lead_client.post(import_url(project), {}, format="multipart")
    assert response.status_code == 400
    assert set(response.json()) >= {"file", "batch"}


@pytest.mark.parametrize(
    ("who", "status"), [("annotator_client", 403), ("ml_engineer_client", 403), ("stranger_client", 404)]
)
def test_only_leads_may_import(who, status, request, project, tmp_path):
    client = request.getfixturevalue(who)
    path = write(tmp_path / "items.jsonl", [good(1)])
    response = client.post(import_url(project), {"file": upload(path), "batch": "b1"}, format="multipart")
    assert response.status_code == status  # 404 for someone with no role there, as for a missing project
    assert not Job.objects.exists()
    assert not Item.objects.exists()
    assert not ImportRecord.objects.exists()


def test_anonymous_import_is_refused(project, anon_client, tmp_path):
    path = write(tmp_path / "items.jsonl", [good(1)])
    response = anon_client.post(import_url(project), {"file": upload(path), "batch": "b1"}, format="multipart")
    assert response.status_code in (401, 403)
    assert not Item.objects.exists()


def test_a_lead_of_one_project_cannot_import_into_another(lead_client, tmp_path):
    other = ProjectFactory(name="Someone else's")
    path = write(tmp_path / "items.jsonl", [good(1)])
    response = lead_client.post(import_url(other), {"file": upload(path), "batch": "b1"}, format="multipart")
    assert response.status_code == 404


def test_import_into_an_unknown_project_is_404(lead_client, tmp_path):
    path = write(tmp_path / "items.jsonl", [good(1)])
    response = lead_client.post(
        "/api/v1/projects/999999/imports/", {"file": upload(path), "batch": "b1"}, format="multipart"
    )
    assert response.status_code == 404


# --- Two imports at once --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@override_settings(TANDEM_IMPORT_CHUNK_SIZE=50)
def test_two_imports_of_one_file_at_once_make_no_duplicates_and_no_errors(tmp_path):
    # Two leads upload the same file at the same moment: one imports it, the other skips it all, neither fails.
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connection

    from annotation.services import items_import

    project = ProjectFactory(name="Race")
    path = write(tmp_path / "items.jsonl", [good(n) for n in range(1500)])
    barrier = Barrier(2)

    def one_import(batch: str):
        try:
            barrier.wait()
            with path.open("rb") as source:
                return items_import(project=project, batch_name=batch, source=source)
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(one_import, ["first", "second"]))
    assert sorted((r.created, r.skipped) for r in reports) == [(0, 1500), (1500, 0)]
    assert Item.objects.filter(project=project).count() == 1500


def test_a_line_at_the_text_limit_imports_even_with_escaped_unicode(project, tmp_path):
    # Three fields of 100,000 CJK characters, written with \uXXXX escapes (json.dumps' default): 1.8 MB of JSON.
    limit = 100_000
    line = good(1, prompt="问" * limit, response_a={"text": "答" * limit}, response_b={"text": "否" * limit})
    path = tmp_path / "wide.jsonl"
    path.write_text(json.dumps(line) + "\n")
    assert path.stat().st_size > 1_800_000
    with override_settings(TANDEM_IMPORT_MAX_TEXT_CHARS=limit):
        out = run_import(path)
    assert "Imported 1 item(s)" in out
    assert len(Item.objects.get().response_b_text) == limit


@override_settings(TANDEM_IMPORT_MAX_TEXT_CHARS=10)
def test_a_runaway_line_is_reported_and_the_lines_after_it_keep_their_numbers(project, tmp_path):
    small = {"response_a": {"text": "yes"}, "response_b": {"text": "no"}}
    lines = [
        good(1, prompt="short", **small),
        good(2, prompt="x" * 200_000),
        good(3, prompt="ok", stratum="organic", **small),
    ]
    _, stderr = run_rejected(write(tmp_path / "runaway.jsonl", lines))
    reported = stderr.splitlines()
    assert reported[0].startswith("line 2: line is over 65,776 bytes")
    assert reported[1].startswith("line 3: unknown stratum")
    assert len(reported) == 2
    assert not Item.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("gz", [False, True])
def test_the_import_record_keeps_the_files_sha256(project, tmp_path, gz):
    """The hand-off package names every imported file by its sha256: of the bytes as received (compressed too)."""
    import hashlib

    path = write(tmp_path / "items.jsonl", [good(n) for n in range(30)], gz=gz)
    run_import(path)
    record = ImportRecord.objects.get(status=ImportRecord.Status.IMPORTED)
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
