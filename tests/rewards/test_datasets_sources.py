"""Preference snapshots that take labelled sources (issue 15): rows from a human-judged batch and from a source side
by side, each saying where it came from; the source's files in the manifest, the row and the lineage; one schema
that `datasets` and TRL's RewardTrainer read as it is; bad source names refused with nothing written; the command,
the API and the admin."""

import json
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Batch
from core.models import Job
from rewards.models import DatasetSnapshot
from rewards.selectors import dataset_files
from rewards.services.datasets import dataset_create, dataset_verify, split_score
from tests.annotation.test_import import HH_FILE, needs_hh
from tests.core.jobs import follow_job
from tests.rewards.sources import make_demonstration_source, make_source, snapshot_action
from tests.rewards.test_datasets import agreed, make_batch, read_jsonl, sha256_of


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path) -> Path:
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    Path(settings.ARTIFACTS_DIR).mkdir()
    return Path(settings.ARTIFACTS_DIR)


def datasets_url(project) -> str:
    return f"/api/v1/projects/{project.pk}/datasets/"


LABELLED = [
    {"prompt": f"Labelled question {n}?", "choice": "ab"[n % 2], "votes": {"a": 3, "b": 1} if n % 2 == 0 else None}
    for n in range(16)
] + [
    {"prompt": "A tied pair", "choice": "tie", "votes": {"a": 2, "b": 2, "tie": 1}},
    {"prompt": "Withdrawn after import", "choice": "a", "withdrawn": True},
]


@pytest.fixture
def human(project):
    return make_batch(project, [agreed(f"Human question {n}?", "ab"[n % 3 == 0]) for n in range(12)], name="human")


@pytest.fixture
def source(project):
    return make_source(project, "past-labels", LABELLED, files=("part1.jsonl", "part2.jsonl"))


def all_rows(snapshot) -> list[dict]:
    files = dataset_files(snapshot=snapshot)
    return read_jsonl(files["train"]) + read_jsonl(files["validation"])


def test_a_mixed_snapshot_has_rows_of_both_sources_and_lists_the_files(project, human, source):
    snapshot = dataset_create(project=project, batch_ids=[human.pk], sources=["past-labels"], validation_fraction=0.3)
    rows = all_rows(snapshot)
    by_source = {name: [r for r in rows if r["source"] == name] for name in ("human", "past-labels")}
    assert len(by_source["human"]) == 12 and len(by_source["past-labels"]) == 16
    assert {r["batch"] for r in by_source["human"]} == {"human"}
    # Every row has the same keys, in the same order: one schema for `datasets`.
    assert {tuple(r) for r in rows} == {
        (
            "prompt",
            "chosen",
            "rejected",
            "item_id",
            "item_pk",
            "batch",
            "source",
            "criteria_version",
            "votes",
            "agreement",
            "margin",
        )
    }
    labelled = {r["item_id"]: r for r in by_source["past-labels"]}
    # The side the file preferred is chosen; its votes give agreement and margin, else they are null.
    assert labelled["past-labels-0"]["chosen"] == "first 0" and labelled["past-labels-1"]["chosen"] == "second 1"
    assert labelled["past-labels-0"]["votes"] == {"a": 3, "b": 1, "tie": 0, "both_bad": 0}
    assert (labelled["past-labels-0"]["agreement"], labelled["past-labels-0"]["margin"]) == (0.75, 0.5)
    assert labelled["past-labels-1"]["votes"] is None and labelled["past-labels-1"]["agreement"] is None
    assert labelled["past-labels-1"]["margin"] == 0.0  # RewardTrainer's margin: the plain pairwise loss
    assert labelled["past-labels-1"]["criteria_version"] is None
    assert all(r["criteria_version"] == human.criteria_version.number for r in by_source["human"])

    # One split over all rows, by prompt and seed.
    validation = {r["item_id"] for r in read_jsonl(dataset_files(snapshot=snapshot)["validation"])}
    for row in rows:
        assert (row["item_id"] in validation) == (split_score(prompt=row["prompt"], seed=0) < 0.3)

    excluded = {r["item_id"]: r for r in read_jsonl(dataset_files(snapshot=snapshot)["excluded"])}
    assert excluded["past-labels-16"]["reason"] == "tie" and excluded["past-labels-16"]["source"] == "past-labels"
    assert excluded["past-labels-17"]["reason"] == "withdrawn"
    assert snapshot.excluded_reasons == {"tie": 1, "withdrawn": 1}

    files = [
        {"filename": "part1.jsonl", "sha256": source.imports.get(filename="part1.jsonl").sha256},
        {"filename": "part2.jsonl", "sha256": source.imports.get(filename="part2.jsonl").sha256},
    ]
    expected = [{"name": "past-labels", "batch_id": source.pk, "format": "items", "files": files}]
    assert snapshot.sources == expected
    manifest = json.loads(dataset_files(snapshot=snapshot)["manifest"].read_text())
    assert manifest["sources"] == expected and manifest["kind"] == "preference"
    assert [b["name"] for b in manifest["batches"]] == ["human"]  # sources are listed as sources
    assert set(snapshot.batches.values_list("name", flat=True)) == {"human", "past-labels"}
    assert snapshot.criteria_versions == [human.criteria_version.number]
    dataset_verify(snapshot=snapshot)


def test_reward_trainer_prepares_the_mixed_rows_as_they_are(project, human, source, tiny_model_dir, tmp_path):
    from datasets import load_dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    snapshot = dataset_create(project=project, batch_ids=[human.pk], sources=["past-labels"], validation_fraction=0.3)
    files = dataset_files(snapshot=snapshot)
    data = load_dataset(
        "json",
        data_files={"train": str(files["train"]), "validation": str(files["validation"])},
        cache_dir=str(tmp_path / "hf-cache"),
    )
    assert data["train"].features["votes"]["a"].dtype == "int64"  # a struct, not JSON text: one schema
    assert set(data["train"]["source"]) == {"human", "past-labels"}
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    trainer = RewardTrainer(
        model=model,
        args=RewardConfig(
            output_dir=str(tmp_path / "out"),
            per_device_train_batch_size=4,
            max_steps=1,
            report_to="none",
            use_cpu=True,
            max_length=128,
            save_strategy="no",
            dataloader_num_workers=0,
        ),
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        processing_class=tokenizer,
    )
    assert trainer.train_dataset.num_rows == snapshot.train_count
    assert {"chosen_ids", "rejected_ids"} <= set(trainer.train_dataset.column_names)
    assert trainer.train().global_step == 1


def test_labelled_rows_without_votes_first_still_load_as_one_schema(project, tmp_path):
    """A source without vote counts before one with them: votes null, then a struct, still one struct column."""
    make_source(project, "no-votes", [{"prompt": f"Q{n}", "choice": "a"} for n in range(5)])
    make_source(project, "votes", [{"prompt": f"R{n}", "choice": "b", "votes": {"a": 1, "b": 4}} for n in range(5)])
    snapshot = dataset_create(project=project, sources=["no-votes", "votes"], validation_fraction=0.0)
    from datasets import load_dataset

    data = load_dataset(
        "json", data_files=str(dataset_files(snapshot=snapshot)["train"]), cache_dir=str(tmp_path / "hf")
    )["train"]
    assert data["votes"][:5] == [None] * 5 and data["votes"][5]["b"] == 4
    assert data["source"] == ["no-votes"] * 5 + ["votes"] * 5


def test_human_rows_say_human_and_sources_are_never_taken_as_every_closed_batch(project, human, source):
    snapshot = dataset_create(project=project)  # no batches and no sources named: every closed human-judged batch
    assert list(snapshot.batches.all()) == [human] and snapshot.sources == []
    rows = all_rows(snapshot)
    assert rows and {r["source"] for r in rows} == {"human"}
    assert {r["source"] for r in read_jsonl(dataset_files(snapshot=snapshot)["excluded"])} <= {"human"}


def test_sources_only_and_dawid_skene_keep_the_schema(project, source):
    snapshot = dataset_create(project=project, sources=["past-labels"], weighting="dawid_skene")
    assert list(snapshot.batches.all()) == [source]
    rows = all_rows(snapshot)
    assert len(rows) == 16 and {r["source"] for r in rows} == {"past-labels"}
    assert all("weighted_votes" in r and r["weighted_votes"] is None for r in rows)


def test_a_labelled_snapshot_of_1500_pairs_takes_well_under_a_second(project):
    pairs = [{"prompt": f"Question {n % 500}?", "choice": "ab"[n % 2], "votes": {"a": 2, "b": 1}} for n in range(1500)]
    make_source(project, "big", [p if n % 2 == 0 else {**p, "votes": {"a": 1, "b": 2}} for n, p in enumerate(pairs)])
    started = time.perf_counter()
    snapshot = dataset_create(project=project, sources=["big"])
    elapsed = time.perf_counter() - started
    assert snapshot.train_count + snapshot.validation_count == 1500
    assert elapsed < 1.0, f"{elapsed:.3f} s"


@pytest.mark.parametrize(
    ("sources", "code"),
    [
        (["nope"], "unknown_source"),
        (["human"], "unknown_source"),  # a human-judged batch is not a labelled source
        (["demos"], "source_format"),  # demonstrations make SFT snapshots
        (["past-labels", "nope"], "unknown_source"),
    ],
)
def test_bad_source_names_are_refused_with_nothing_written(
    lead_client, project, human, source, artifacts, sources, code
):
    make_demonstration_source(project, "demos", [("Write a haiku.", "Leaves fall, quiet.")])
    response = lead_client.post(datasets_url(project), {"sources": sources}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert not DatasetSnapshot.objects.exists() and not Job.objects.exists()
    assert not any((artifacts / "datasets").glob("*"))  # not even a temporary folder
    with pytest.raises(Exception) as refused:
        dataset_create(project=project, batch_ids=[human.pk], sources=sources)
    assert refused.value.code == code
    assert not DatasetSnapshot.objects.exists() and not any((artifacts / "datasets").glob("[0-9]*"))


def test_a_source_named_as_a_batch_is_refused(lead_client, project, human, source):
    response = lead_client.post(datasets_url(project), {"batches": [human.pk, source.pk]}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "labelled_batch")


def test_the_api_makes_a_mixed_snapshot_and_shows_its_sources(ml_engineer_client, project, human, source):
    response = ml_engineer_client.post(
        datasets_url(project), {"batches": [human.pk], "sources": ["past-labels"]}, format="json"
    )
    body = follow_job(ml_engineer_client, response)["result"]
    assert body["kind"] == "preference"
    assert [s["name"] for s in body["sources"]] == ["past-labels"]
    assert [s["filename"] for s in body["sources"][0]["files"]] == ["part1.jsonl", "part2.jsonl"]
    assert {(b["name"], b["kind"]) for b in body["batches"]} == {("human", "comparison"), ("past-labels", "labelled")}
    detail = ml_engineer_client.get(f"/api/v1/datasets/{body['id']}/").json()
    assert detail["sources"] == body["sources"]
    download = ml_engineer_client.get(f"/api/v1/datasets/{body['id']}/files/train/")
    rows = [json.loads(line) for line in b"".join(download.streaming_content).splitlines()]
    assert {r["source"] for r in rows} <= {"human", "past-labels"} and rows


def test_export_pairs_takes_sources(project, human, source, tmp_path):
    out = tmp_path / "pairs.jsonl"
    stdout = StringIO()
    call_command(
        "export_pairs",
        "--project",
        project.name,
        "--sources",
        "past-labels",
        "--batches",
        "human",
        "--out",
        str(out),
        stdout=stdout,
        stderr=StringIO(),
    )
    snapshot = DatasetSnapshot.objects.get(pk=int(stdout.getvalue()))
    assert sha256_of(out) == snapshot.sha256["train"]
    assert {r["source"] for r in read_jsonl(out)} == {"human", "past-labels"}

    call_command(
        "export_pairs", "--project", project.name, "--sources", "past-labels", "--out", str(out), stdout=stdout
    )
    assert {r["source"] for r in read_jsonl(out)} == {"past-labels"}
    with pytest.raises(CommandError, match="Not labelled sources"):
        call_command("export_pairs", "--project", project.name, "--sources", "human", "--out", str(out))


def test_the_admin_action_takes_sources_selected_or_chosen(project, human, source):
    from django.test import Client

    from tests.factories import UserFactory

    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    changelist = "/admin/annotation/batch/"
    # The form offers the project's labelled sources of preference data; a selected source is pre-chosen.
    form = client.post(changelist, {"action": "make_dataset_snapshot", "_selected_action": [human.pk]})
    assert form.status_code == 200 and b"past-labels" in form.content
    response = snapshot_action(client, [human.pk], [source.pk], weighting="vote")
    assert response.status_code == 302, response.content[:3000]
    from tests.core.jobs import run_queued_jobs

    run_queued_jobs()
    snapshot = DatasetSnapshot.objects.get()
    assert [s["name"] for s in snapshot.sources] == ["past-labels"]
    page = client.get(f"/admin/rewards/datasetsnapshot/{snapshot.pk}/change/")
    assert b"part1.jsonl" in page.content and b"preference" in page.content.lower()

    # A labelled source selected in the changelist alone: a sources-only snapshot.
    response = snapshot_action(client, [source.pk], [source.pk], weighting="vote")
    assert response.status_code == 302
    run_queued_jobs()
    latest = DatasetSnapshot.objects.order_by("-pk").first()
    assert list(latest.batches.all()) == [source] and latest.train_count + latest.validation_count == 16


def test_lineage_and_the_run_page_show_the_sources(project, human, source, ml_engineer):
    from django.test import Client

    from tests.trainer.runs_fixtures import finished_reward_model
    from trainer.lineage import lineage_build

    snapshot = dataset_create(project=project, batch_ids=[human.pk], sources=["past-labels"])
    run = finished_reward_model(snapshot)
    lineage = lineage_build(run=run)
    assert lineage["sources"] == snapshot.sources and lineage["snapshot"]["kind"] == "preference"
    assert {(b["name"], b["kind"]) for b in lineage["batches"]} == {
        ("human", "comparison"),
        ("past-labels", "labelled"),
    }
    assert [c["number"] for c in lineage["criteria_versions"]] == [human.criteria_version.number]
    type(run).objects.filter(pk=run.pk).update(lineage=json.loads(json.dumps(lineage, default=str)))
    client = Client()
    client.force_login(ml_engineer)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="lineage-sources"' in html and "past-labels (items, part1.jsonl" in html


@needs_hh
def test_hh_rlhf_imported_as_a_source_gives_a_snapshot_trl_loads(project, tmp_path):
    """The shared HH-RLHF file (1,500 pairs) through the labelled import, then a sources-only snapshot."""
    labelled = pytest.importorskip("annotation.services.labelled")
    hh_file = HH_FILE
    with open(hh_file, "rb") as handle:
        labelled.labelled_import(project=project, source_name="hh-rlhf", file=handle, filename=hh_file.name)
    source = Batch.objects.get(project=project, name="hh-rlhf")
    started = time.perf_counter()
    snapshot = dataset_create(project=project, sources=["hh-rlhf"])
    elapsed = time.perf_counter() - started
    assert snapshot.train_count + snapshot.validation_count + snapshot.excluded_count == source.items.count()
    assert snapshot.train_count + snapshot.validation_count > 1_400
    record = source.imports.get(status="imported")
    assert snapshot.sources[0]["files"] == [{"filename": hh_file.name, "sha256": record.sha256}]
    assert elapsed < 1.0, f"{elapsed:.3f} s"
    from datasets import load_dataset

    files = dataset_files(snapshot=snapshot)
    data = load_dataset(
        "json",
        data_files={"train": str(files["train"]), "validation": str(files["validation"])},
        cache_dir=str(tmp_path / "hf"),
    )
    assert data["train"].num_rows == snapshot.train_count and set(data["train"]["source"]) == {"hh-rlhf"}
