"""Dataset snapshots through the API and the service: files that match their counts and sha256s, the split grouped
by prompt, one prompt form per file, immutability, tampering refused, and bad requests refused with nothing kept."""

import hashlib
import json
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from annotation.models import AnnotationSession, Assignment, Batch, Item, Judgment
from annotation.services import member_add
from core.models import Job
from rewards.errors import DatasetTampered, SnapshotImmutable
from rewards.models import DatasetSnapshot
from rewards.selectors import batch_item_votes, batch_item_votes_iter, dataset_files
from rewards.services.datasets import dataset_create, dataset_verify, prompt_group, split_score
from rewards.services.pairs import iter_decisions, preference_pairs
from tests.core.jobs import follow_job
from tests.factories import BatchFactory, ProjectFactory, UserFactory, item_row

ANNOTATORS = tuple(f"ann-{c}" for c in "abcdefg")


def make_batch(project, items: list[dict], *, name: str | None = None, closed: bool = True) -> Batch:
    """A batch of `items`, each {"prompt" or "messages", "votes": [choice per annotator], "gold"?}, written in bulk.

    Responses are "good <n>" for A and "bad <n>" for B, so a test can tell the chosen side from the text."""
    batch = BatchFactory(project=project, name=name or f"batch-{uuid.uuid4().hex[:8]}")
    now = timezone.now()
    users = [UserFactory(username=u) for u in ANNOTATORS]
    sessions = {}
    for user in users:
        sessions[user.pk], _ = AnnotationSession.objects.get_or_create(
            project=project,
            annotator=user,
            defaults={"started_at": now, "expires_at": now + timedelta(hours=1), "max_tasks": 1_000_000},
        )
    created = Item.objects.bulk_create(
        item_row(
            batch,
            n,
            spec,
            response_a_text=f"good {n}",
            response_a_model="alpha",
            response_b_text=f"bad {n}",
            response_b_model="beta",
            gold=spec.get("gold", ""),
            judgment_count=len(spec["votes"]),
        )
        for n, spec in enumerate(items)
    )
    assignments, judgments = [], []
    for item, spec in zip(created, items, strict=True):
        for user, choice in zip(users, spec["votes"], strict=False):
            assignment = Assignment(
                session_id=sessions[user.pk].pk,
                item=item,
                annotator=user,
                left_is_a=True,
                leased_at=now,
                lease_expires_at=now,
                judged_at=now,
            )
            assignments.append(assignment)
            judgments.append(
                Judgment(
                    assignment=assignment,
                    item=item,
                    batch=batch,
                    annotator=user,
                    choice=choice,
                    shown_left="a",
                    seconds=10.0,
                    is_gold=bool(item.gold),
                )
            )
    Assignment.objects.bulk_create(assignments, batch_size=2_000)
    Judgment.objects.bulk_create(judgments, batch_size=2_000)
    if closed:
        Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.CLOSED, closed_at=now)
        batch.refresh_from_db()
    return batch


def agreed(prompt: str, side: str = "a") -> dict:
    return {"prompt": prompt, "votes": [side, side, side]}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path) -> Path:
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    Path(settings.ARTIFACTS_DIR).mkdir()
    return Path(settings.ARTIFACTS_DIR)


@pytest.fixture
def mixed_batch(project):
    """20 agreed items (B wins on every fifth) plus one of each exclusion reason."""
    items = [agreed(f"Question {n}?", "b" if n % 5 == 0 else "a") for n in range(20)]
    items += [
        {"prompt": "A gold probe", "votes": ["a", "a", "a"], "gold": "a"},
        {"prompt": "Still being judged", "votes": ["a", "a"]},
        {"prompt": "Split down the middle", "votes": ["a", "b", "tie", "both_bad"]},
        {"prompt": "Both are bad", "votes": ["both_bad", "both_bad", "a"]},
        {"prompt": "Low agreement", "votes": ["a", "a", "b", "b", "a", "b", "a"]},
    ]
    return make_batch(project, items, name="first")


def datasets_url(project) -> str:
    return f"/api/v1/projects/{project.pk}/datasets/"


def test_snapshot_files_match_counts_sha256_and_votes(ml_engineer_client, project, mixed_batch, artifacts):
    response = ml_engineer_client.post(
        datasets_url(project), {"batches": [mixed_batch.pk], "seed": 3, "validation_fraction": 0.2}, format="json"
    )
    assert response.status_code == 202, response.json()
    assert not DatasetSnapshot.objects.exists()  # made by the worker, not inside the request
    job = follow_job(ml_engineer_client, response)
    assert (job["kind"], job["state"], job["error"]) == ("dataset_create", "succeeded", None)
    assert job["progress"] == {"done": 1, "total": 1, "unit": "steps", "fraction": 1.0}
    body = job["result"]
    snapshot = DatasetSnapshot.objects.get(pk=body["id"])
    files = dataset_files(snapshot=snapshot)
    assert files["train"].parent == artifacts / "datasets" / str(snapshot.pk)
    assert body["directory"] == f"datasets/{snapshot.pk}"

    train, validation, excluded = (read_jsonl(files[n]) for n in ("train", "validation", "excluded"))
    assert (len(train), len(validation), len(excluded)) == (
        body["counts"]["train"],
        body["counts"]["validation"],
        body["counts"]["excluded"],
    )
    assert len(train) + len(validation) == 20 and validation and train
    assert body["excluded_reasons"] == {"both_bad": 1, "gold": 1, "incomplete": 1, "low_agreement": 1, "split": 1}
    assert Counter(e["reason"] for e in excluded) == Counter(body["excluded_reasons"])
    for name in ("train", "validation", "excluded", "manifest"):
        assert body["sha256"][name] == sha256_of(files[name]), name
    assert body["prompt_format"] == "standard"
    assert body["batches"] == [{"id": mixed_batch.pk, "name": "first", "kind": "comparison"}]
    assert body["criteria_versions"] == [mixed_batch.criteria_version.number]
    assert body["created_by"] == "mle"

    # TRL's preference format with the extra keys; the chosen text is the side the votes picked.
    for pair in train + validation:
        assert {
            "prompt",
            "chosen",
            "rejected",
            "item_id",
            "batch",
            "criteria_version",
            "votes",
            "agreement",
            "margin",
        } <= (set(pair))
        n = int(pair["item_id"].rsplit("-", 1)[1])
        winner = "b" if n % 5 == 0 else "a"
        assert pair["chosen"] == (f"good {n}" if winner == "a" else f"bad {n}")
        assert pair["votes"] == {"a": 3 * (winner == "a"), "b": 3 * (winner == "b"), "tie": 0, "both_bad": 0}
        assert pair["agreement"] == 1.0 and pair["margin"] == 1.0 and pair["batch"] == "first"

    manifest = json.loads(files["manifest"].read_text())
    assert manifest["id"] == snapshot.pk
    assert manifest["counts"] == body["counts"]
    assert manifest["batches"][0]["name"] == "first"
    assert {name: f["sha256"] for name, f in manifest["files"].items()} == {
        n: body["sha256"][n] for n in ("train", "validation", "excluded")
    }
    assert manifest["excluded_reasons"] == body["excluded_reasons"]

    # Listed and readable by the project's members who may export; the download is the file itself.
    listed = ml_engineer_client.get(datasets_url(project)).json()
    assert [s["id"] for s in listed] == [snapshot.pk]
    assert ml_engineer_client.get(f"/api/v1/datasets/{snapshot.pk}/").json()["sha256"] == body["sha256"]
    download = ml_engineer_client.get(f"/api/v1/datasets/{snapshot.pk}/files/train/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == files["train"].read_bytes()
    assert "attachment" in download["Content-Disposition"]
    assert body["files"]["validation"].endswith(f"/api/v1/datasets/{snapshot.pk}/files/validation/")


def test_split_is_grouped_by_prompt_seeded_and_about_the_fraction(project, artifacts):
    # 400 prompts, 1-4 items each; some repeats differ only in case and spacing, and must still group together.
    items = []
    for p in range(400):
        for k in range(1 + p % 4):
            text = f"Prompt {p}: tell me about topic {p % 37}"
            items.append(agreed(text.upper() if k == 1 else f"  {text.replace(' ', '   ')} " if k == 2 else text))
    batch = make_batch(project, items)
    snapshot = dataset_create(project=project, batch_ids=[batch.pk], seed=11)
    files = dataset_files(snapshot=snapshot)
    train, validation = read_jsonl(files["train"]), read_jsonl(files["validation"])
    assert len(train) + len(validation) == len(items)
    train_groups = {prompt_group(p["prompt"]) for p in train}
    validation_groups = {prompt_group(p["prompt"]) for p in validation}
    assert len(train_groups | validation_groups) == 400
    assert not train_groups & validation_groups
    share = len(validation_groups) / 400  # 40 expected; 3 standard deviations is ±18
    assert 0.055 < share < 0.145, share
    for pair in validation:
        assert split_score(prompt=pair["prompt"], seed=11) < 0.1

    # Deterministic for a seed, different for another.
    again = dataset_create(project=project, batch_ids=[batch.pk], seed=11)
    assert again.sha256["train"] == snapshot.sha256["train"]
    assert again.sha256["validation"] == snapshot.sha256["validation"]
    other = dataset_create(project=project, batch_ids=[batch.pk], seed=12)
    assert other.sha256["validation"] != snapshot.sha256["validation"]


def test_a_small_snapshot_gets_both_sides(project):
    # Three prompts at 10 %: the hash alone would most likely leave validation empty.
    batch = make_batch(project, [agreed("one"), agreed("one"), agreed("two"), agreed("three")])
    for seed in range(5):
        snapshot = dataset_create(project=project, batch_ids=[batch.pk], seed=seed)
        assert snapshot.train_count and snapshot.validation_count, seed
        files = dataset_files(snapshot=snapshot)
        sides = [{p["prompt"] for p in read_jsonl(files[n])} for n in ("train", "validation")]
        assert not sides[0] & sides[1]
        dataset_verify(snapshot=snapshot)  # the moved lines were hashed again
    none_held_out = dataset_create(project=project, batch_ids=[batch.pk], validation_fraction=0.0)
    assert (none_held_out.train_count, none_held_out.validation_count) == (4, 0)


def test_conversational_items_make_a_conversational_file(project):
    chat = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "?"},
    ]
    text_only = make_batch(project, [agreed("plain text")])
    mixed = make_batch(project, [agreed("plain text"), {"messages": chat, "votes": ["b", "b", "b"]}])

    standard = dataset_create(project=project, batch_ids=[text_only.pk], validation_fraction=0.0)
    assert standard.prompt_format == "standard"
    (line,) = read_jsonl(dataset_files(snapshot=standard)["train"])
    assert (line["prompt"], line["chosen"], line["rejected"]) == ("plain text", "good 0", "bad 0")

    conversational = dataset_create(project=project, batch_ids=[mixed.pk], validation_fraction=0.0)
    assert conversational.prompt_format == "conversational"
    lines = read_jsonl(dataset_files(snapshot=conversational)["train"])
    assert lines[0]["prompt"] == [{"role": "user", "content": "plain text"}]
    assert lines[0]["chosen"] == [{"role": "assistant", "content": "good 0"}]
    assert lines[1]["prompt"] == chat
    assert lines[1]["chosen"] == [{"role": "assistant", "content": "bad 1"}]
    assert lines[1]["rejected"] == [{"role": "assistant", "content": "good 1"}]


def test_streamed_votes_and_decisions_equal_the_in_memory_ones(project, mixed_batch):
    make_batch(project, [agreed(f"q{n}", "ab"[n % 2]) for n in range(9)], name="second")
    ids = list(Batch.objects.filter(project=project).values_list("pk", flat=True))
    whole = [(e.item.pk, e.votes) for e in batch_item_votes(batch=mixed_batch)]
    assert [(e.item.pk, e.votes) for e in batch_item_votes_iter(batch=mixed_batch, chunk_size=4)] == whole
    pairs, excluded = preference_pairs(batch_ids=ids)
    streamed = list(iter_decisions(batch_ids=ids, chunk_size=3))
    assert [row for ok, row in streamed if ok] == pairs
    assert [row for ok, row in streamed if not ok] == excluded
    ds = list(iter_decisions(batch_ids=ids, weighting="dawid_skene", chunk_size=3))
    assert [row for ok, row in ds if ok] == preference_pairs(batch_ids=ids, weighting="dawid_skene")[0]


def test_snapshots_are_immutable(project, mixed_batch):
    snapshot = dataset_create(project=project, batch_ids=[mixed_batch.pk])
    snapshot.seed = 99
    with pytest.raises(SnapshotImmutable):
        snapshot.save()
    snapshot.refresh_from_db()
    assert snapshot.seed == 0


def test_tampered_or_missing_files_are_refused(ml_engineer_client, project, mixed_batch):
    snapshot = dataset_create(project=project, batch_ids=[mixed_batch.pk])
    dataset_verify(snapshot=snapshot)
    files = dataset_files(snapshot=snapshot)
    original = files["train"].read_bytes()
    files["train"].write_bytes(original.replace(b"good", b"evil", 1))

    with pytest.raises(DatasetTampered, match=r"train\.jsonl"):
        dataset_verify(snapshot=snapshot)
    response = ml_engineer_client.get(f"/api/v1/datasets/{snapshot.pk}/files/train/")
    assert response.status_code == 409
    assert response.json()["code"] == "dataset_tampered" and "train.jsonl" in response.json()["detail"]
    # The other files are intact and still served.
    assert ml_engineer_client.get(f"/api/v1/datasets/{snapshot.pk}/files/manifest/").status_code == 200

    files["train"].write_bytes(original)
    dataset_verify(snapshot=snapshot)
    files["excluded"].unlink()
    with pytest.raises(DatasetTampered, match=r"excluded\.jsonl is missing"):
        dataset_verify(snapshot=snapshot)
    assert ml_engineer_client.get(f"/api/v1/datasets/{snapshot.pk}/files/excluded/").json()["code"] == (
        "dataset_tampered"
    )


def _leftovers(artifacts: Path) -> list[str]:
    root = artifacts / "datasets"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_open_batches_are_refused_and_nothing_is_kept(lead_client, project, mixed_batch, artifacts):
    still_open = make_batch(project, [agreed("x")], name="open one", closed=False)
    response = lead_client.post(datasets_url(project), {"batches": [mixed_batch.pk, still_open.pk]}, format="json")
    assert response.status_code == 409  # at once: nothing is queued
    assert not Job.objects.exists()
    assert response.json()["code"] == "batch_open" and "open one" in response.json()["detail"]
    assert not DatasetSnapshot.objects.exists() and _leftovers(artifacts) == []


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"batches": [10**9]}, "unknown_batch"),
        ({"batches": "OTHER"}, "unknown_batch"),
        ({"validation_fraction": 0.7}, "invalid"),
        ({"validation_fraction": -0.1}, "invalid"),
        ({"weighting": "majority"}, "invalid"),
        ({"seed": -1}, "invalid"),
        ({"batches": []}, "no_batches"),
    ],
)
def test_bad_requests_are_refused(lead_client, project, mixed_batch, artifacts, payload, code):
    other_project = ProjectFactory(name="Elsewhere")
    foreign = make_batch(other_project, [agreed("theirs")])
    if payload.get("batches") == "OTHER":
        payload = {"batches": [mixed_batch.pk, foreign.pk]}
    response = lead_client.post(datasets_url(project), payload, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == code, response.json()
    assert not DatasetSnapshot.objects.exists() and _leftovers(artifacts) == []


def test_batches_without_pairs_are_refused(lead_client, project, artifacts):
    batch = make_batch(project, [{"prompt": "p", "votes": ["a", "b", "tie"]}])
    response = lead_client.post(datasets_url(project), {"batches": [batch.pk]}, format="json")
    job = follow_job(lead_client, response)  # known only once the pairs are read: the job fails
    assert (job["state"], job["result"]) == ("failed", None)
    assert job["error"]["code"] == "no_pairs" and "1 split" in job["error"]["detail"]
    assert _leftovers(artifacts) == []


def test_a_failure_while_writing_leaves_no_row_and_no_files(project, mixed_batch, artifacts, monkeypatch):
    import rewards.services.datasets as datasets

    def broken(**kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(datasets, "_manifest", broken)
    with pytest.raises(OSError, match="disk full"):
        dataset_create(project=project, batch_ids=[mixed_batch.pk])
    assert not DatasetSnapshot.objects.exists()
    assert _leftovers(artifacts) == []


def test_temporary_folders_of_killed_exports_are_cleared_after_a_day(project, mixed_batch, artifacts):
    import os
    import time

    root = artifacts / "datasets"
    stale, recent = root / ".tmp-stale", root / ".tmp-recent"
    for folder in (stale, recent):
        folder.mkdir(parents=True)
        (folder / "train.jsonl").write_text("{}\n")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))
    snapshot = dataset_create(project=project, batch_ids=[mixed_batch.pk])
    assert _leftovers(artifacts) == sorted([".tmp-recent", str(snapshot.pk)])  # a running export's folder stays


def test_without_batch_ids_every_closed_batch_is_used(lead_client, project, mixed_batch):
    make_batch(project, [agreed("not yet")], closed=False)
    second = make_batch(project, [agreed("later")], name="second")
    body = follow_job(lead_client, lead_client.post(datasets_url(project), {}, format="json"))["result"]
    assert [b["name"] for b in body["batches"]] == ["first", "second"]
    assert body["counts"]["train"] + body["counts"]["validation"] == 21
    assert second.pk in [b["id"] for b in body["batches"]]


def test_only_leads_and_ml_engineers_reach_datasets(
    project, mixed_batch, annotator_client, stranger_client, anon_client, lead_client
):
    snapshot = dataset_create(project=project, batch_ids=[mixed_batch.pk])
    urls = [datasets_url(project), f"/api/v1/datasets/{snapshot.pk}/", f"/api/v1/datasets/{snapshot.pk}/files/train/"]
    for client, expected in ((annotator_client, 403), (stranger_client, 404), (anon_client, 401)):
        for url in urls:
            assert client.get(url).status_code == expected, url
        assert client.post(datasets_url(project), {}, format="json").status_code == expected
    for url in urls:
        assert lead_client.get(url).status_code == 200, url
    assert lead_client.get("/api/v1/datasets/999999/").status_code == 404
    assert lead_client.get(f"/api/v1/datasets/{snapshot.pk}/files/secrets/").status_code == 404
    # A lead of another project is a stranger here.
    elsewhere = ProjectFactory(name="Elsewhere")
    UserFactory(username="other-lead")
    member_add(project=elsewhere, username="other-lead", role="lead")
    from rest_framework.test import APIClient

    other = APIClient()
    other.force_authenticate(UserFactory(username="other-lead"))
    assert other.get(f"/api/v1/datasets/{snapshot.pk}/").status_code == 404  # as a missing snapshot
