"""SFT snapshots (issue 15): accepted demonstrations only, their final text (the reviewer's edit when there is one),
TRL's conversational format that `datasets` loads and SFTTrainer's data utilities take as it is, a prompt-grouped
split, every row left out with its reason, writers and reviewers in the manifest, the same verification and
immutability as preference snapshots; refusals with nothing written; the API, the command and the admin."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from annotation.models import Demonstration
from core.models import Job
from rewards.errors import DatasetTampered, SnapshotImmutable
from rewards.models import DatasetSnapshot
from rewards.selectors import dataset_files
from rewards.services.datasets import dataset_verify, split_score
from rewards.services.sft_datasets import sft_dataset_create
from tests.core.jobs import follow_job, run_queued_jobs
from tests.factories import UserFactory
from tests.rewards.sources import make_demonstration_batch, make_demonstration_source, make_source, snapshot_action
from tests.rewards.test_datasets import make_batch, read_jsonl, sha256_of

ACCEPTED, PENDING, REJECTED = (
    Demonstration.Status.ACCEPTED,
    Demonstration.Status.PENDING,
    Demonstration.Status.REJECTED,
)
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path) -> Path:
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    Path(settings.ARTIFACTS_DIR).mkdir()
    return Path(settings.ARTIFACTS_DIR)


def rows_of(n: int = 12) -> list[dict]:
    rows = [
        {"prompt": f"Explain topic {k}.", "demos": [("writer-a" if k % 2 else "writer-b", ACCEPTED, f"Answer {k}.")]}
        for k in range(n)
    ]
    rows[0]["demos"] = [("writer-a", ACCEPTED, "answer zero, as written", "Answer 0, as edited.")]
    # Two writers for one prompt: both rows, on the same side of the split.
    rows[1]["demos"].append(("writer-c", ACCEPTED, "Another answer 1."))
    rows += [
        {"messages": CHAT, "demos": [("writer-b", ACCEPTED, "Blue.")]},
        {"prompt": "Still under review.", "demos": [("writer-a", PENDING, "Pending answer.")]},
        {"prompt": "Rejected one.", "demos": [("writer-b", REJECTED, "Off topic.")]},
        {
            "prompt": "Withdrawn item.",
            "demos": [("writer-a", ACCEPTED, "Accepted, then withdrawn.")],
            "withdrawn": True,
        },
        {"prompt": "Nobody wrote for this one."},
    ]
    return rows


@pytest.fixture
def demos(project):
    return make_demonstration_batch(project, rows_of(), name="demos")


def all_rows(snapshot) -> list[dict]:
    files = dataset_files(snapshot=snapshot)
    return read_jsonl(files["train"]) + read_jsonl(files["validation"])


def test_accepted_demonstrations_become_conversations_with_the_final_text_last(project, demos):
    source = make_demonstration_source(project, "past-demos", [("Say hi.", "Hi!"), (CHAT, "Red.")])
    snapshot = sft_dataset_create(project=project, batches=[demos], sources=["past-demos"], validation_fraction=0.3)
    assert (snapshot.kind, snapshot.prompt_format) == ("sft", "conversational")
    rows = all_rows(snapshot)
    assert len(rows) == 12 + 1 + 1 + 2 == snapshot.train_count + snapshot.validation_count
    assert {tuple(r) for r in rows} == {("messages", "item_id", "source", "demonstration_id", "batch")}
    by_id = {}
    for row in rows:
        by_id.setdefault(row["item_id"], []).append(row)
        assert row["messages"][-1]["role"] == "assistant"
    edited = by_id["demos-0"][0]
    assert edited["messages"] == [
        {"role": "user", "content": "Explain topic 0."},
        {"role": "assistant", "content": "Answer 0, as edited."},  # Demonstration.final_text
    ]
    assert edited["source"] == "human" and edited["batch"] == "demos"
    assert Demonstration.objects.get(pk=edited["demonstration_id"]).final_text == "Answer 0, as edited."
    assert by_id["demos-12"][0]["messages"] == [*CHAT, {"role": "assistant", "content": "Blue."}]
    assert by_id["past-demos-1"][0]["messages"] == [*CHAT, {"role": "assistant", "content": "Red."}]
    assert by_id["past-demos-0"][0]["source"] == "past-demos"

    # One prompt, one side: the split hashes the messages before the answer.
    validation = {r["demonstration_id"] for r in read_jsonl(dataset_files(snapshot=snapshot)["validation"])}
    for row in rows:
        assert (row["demonstration_id"] in validation) == (split_score(prompt=row["messages"][:-1], seed=0) < 0.3)
    assert len({r["demonstration_id"] in validation for r in by_id["demos-1"]}) == 1

    excluded = {r["item_id"]: r["reason"] for r in read_jsonl(dataset_files(snapshot=snapshot)["excluded"])}
    assert excluded == {"demos-13": "pending", "demos-14": "rejected", "demos-15": "withdrawn", "demos-16": "unwritten"}
    assert snapshot.excluded_reasons == {"pending": 1, "rejected": 1, "unwritten": 1, "withdrawn": 1}

    manifest = json.loads(dataset_files(snapshot=snapshot)["manifest"].read_text())
    assert manifest["kind"] == "sft"
    assert manifest["writers"] == {"writer-a": 7, "writer-b": 6, "writer-c": 1}
    assert manifest["reviewers"] == {"lead-reviewer": 14}  # imported demonstrations have no reviewer
    assert (
        manifest["sources"]
        == snapshot.sources
        == [
            {
                "name": "past-demos",
                "batch_id": source.pk,
                "format": "demonstrations",
                "files": [{"filename": "past-demos.jsonl", "sha256": source.imports.get().sha256}],
            }
        ]
    )
    assert [b["name"] for b in manifest["batches"]] == ["demos"]
    for name in ("train", "validation", "excluded"):
        assert (
            manifest["files"][name]["sha256"]
            == snapshot.sha256[name]
            == sha256_of(dataset_files(snapshot=snapshot)[name])
        )
    dataset_verify(snapshot=snapshot)


def test_trl_takes_the_sft_rows_as_they_are(project, demos, tiny_model_dir, tmp_path):
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    snapshot = sft_dataset_create(project=project, batches=[demos], validation_fraction=0.3)
    files = dataset_files(snapshot=snapshot)
    data = load_dataset(
        "json",
        data_files={"train": str(files["train"]), "validation": str(files["validation"])},
        cache_dir=str(tmp_path / "hf-cache"),
    )
    assert data["train"].num_rows == snapshot.train_count and data["validation"].num_rows == snapshot.validation_count
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for row in data["train"]:
        assert is_conversational(row)
        text = maybe_apply_chat_template(row, tokenizer)["text"]
        assert text.endswith(f"<|assistant|>{row['messages'][-1]['content']}</s>")
    # The assistant-only loss SFTTrainer computes reads the template's generation marks on these rows.
    ids = tokenizer.apply_chat_template(
        data["train"][0]["messages"], return_dict=True, return_assistant_tokens_mask=True, tokenize=True
    )
    assert sum(ids["assistant_masks"]) > 0


def test_sft_trainer_prepares_the_rows(project, demos, tiny_model_dir, tmp_path):
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    snapshot = sft_dataset_create(project=project, batches=[demos], validation_fraction=0.3)
    data = load_dataset(
        "json", data_files=str(dataset_files(snapshot=snapshot)["train"]), cache_dir=str(tmp_path / "hf")
    )["train"]
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=SFTConfig(
            output_dir=str(tmp_path / "out"),
            max_steps=1,
            per_device_train_batch_size=4,
            report_to="none",
            use_cpu=True,
            save_strategy="no",
            assistant_only_loss=True,
            dataloader_num_workers=0,
            max_length=128,
        ),
        train_dataset=data,
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
    )
    assert trainer.train_dataset.num_rows == snapshot.train_count
    # Loss on the assistant's tokens only: the prompt's tokens are masked out of the labels.
    labels = trainer.train_dataset[0]["labels"]
    assert -100 in labels and any(label != -100 for label in labels)
    assert trainer.train().global_step == 1


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"batches": "comparison"}, "not_demonstration_batch"),
        ({"sources": ["preference-source"]}, "source_format"),
        ({"sources": ["nope"]}, "unknown_source"),
        ({"sources": ["demos"]}, "unknown_source"),  # a demonstration batch is not a labelled source
        ({"batches": "undecided"}, "no_demonstrations"),
        ({"batches": [], "sources": []}, "no_batches"),
    ],
)
def test_refusals_leave_nothing(project, demos, artifacts, kwargs, code):
    comparison = make_batch(project, [{"prompt": "Q", "votes": ["a", "a", "a"]}], name="comparison")
    make_source(project, "preference-source", [{"prompt": "Q2", "choice": "a"}])
    undecided = make_demonstration_batch(project, [{"prompt": "P", "demos": [("w", PENDING, "text")]}])
    named = {"comparison": [comparison.pk], "undecided": [undecided.pk]}
    batches = kwargs.get("batches")
    kwargs = {**kwargs, "batches": named[batches] if isinstance(batches, str) else batches}
    with pytest.raises(Exception) as refused:
        sft_dataset_create(project=project, **kwargs)
    assert refused.value.code == code
    assert not DatasetSnapshot.objects.exists()
    assert not any((artifacts / "datasets").glob("*"))  # not even a temporary folder


def test_an_sft_snapshot_is_immutable_and_checked(project, demos, ml_engineer_client):
    snapshot = sft_dataset_create(project=project, batches=[demos])
    with pytest.raises(SnapshotImmutable):
        snapshot.save()
    train = dataset_files(snapshot=snapshot)["train"]
    train.write_text(train.read_text() + "\n")
    with pytest.raises(DatasetTampered):
        dataset_verify(snapshot=snapshot)
    response = ml_engineer_client.get(f"/api/v1/datasets/{snapshot.pk}/files/train/")
    assert (response.status_code, response.json()["code"]) == (409, "dataset_tampered")


def test_the_api_makes_lists_and_serves_an_sft_snapshot(ml_engineer_client, lead_client, project, demos):
    url = f"/api/v1/projects/{project.pk}/datasets/"
    response = ml_engineer_client.post(url, {"kind": "sft", "batches": [demos.pk]}, format="json")
    body = follow_job(ml_engineer_client, response)["result"]
    assert body["kind"] == "sft" and body["counts"]["train"] + body["counts"]["validation"] == 14
    assert [(b["name"], b["kind"]) for b in body["batches"]] == [("demos", "demonstration")]
    listed = ml_engineer_client.get(url).json()
    assert [(s["id"], s["kind"]) for s in listed] == [(body["id"], "sft")]
    assert ml_engineer_client.get(f"/api/v1/datasets/{body['id']}/").json()["kind"] == "sft"
    download = ml_engineer_client.get(body["files"]["train"])
    rows = [json.loads(line) for line in b"".join(download.streaming_content).splitlines()]
    assert rows and all(r["messages"][-1]["role"] == "assistant" for r in rows)
    manifest = ml_engineer_client.get(body["files"]["manifest"])
    assert json.loads(b"".join(manifest.streaming_content))["writers"]["writer-c"] == 1

    # Refused at once, nothing queued: a comparison batch, a weighting, an annotator.
    comparison = make_batch(project, [{"prompt": "Q", "votes": ["a", "a", "a"]}], name="comparison")
    jobs = Job.objects.count()
    refused = lead_client.post(url, {"kind": "sft", "batches": [comparison.pk]}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (400, "not_demonstration_batch")
    refused = lead_client.post(url, {"kind": "sft", "weighting": "dawid_skene"}, format="json")
    assert refused.status_code == 400
    refused = lead_client.post(url, {"batches": [demos.pk]}, format="json")  # a preference snapshot of demonstrations
    assert (refused.status_code, refused.json()["code"]) == (400, "demonstration_batch")
    assert Job.objects.count() == jobs


def test_export_sft_writes_the_train_split_and_prints_the_id(project, demos, tmp_path):
    make_demonstration_source(project, "past-demos", [("Say hi.", "Hi!")])
    out = tmp_path / "sft.jsonl"
    stdout, stderr = StringIO(), StringIO()
    call_command(
        "export_sft",
        "--project",
        project.name,
        "--batches",
        "demos",
        "--sources",
        "past-demos",
        "--validation-fraction",
        "0.2",
        "--out",
        str(out),
        stdout=stdout,
        stderr=stderr,
    )
    snapshot = DatasetSnapshot.objects.get(pk=int(stdout.getvalue()))
    assert snapshot.kind == "sft" and sha256_of(out) == snapshot.sha256["train"]
    assert sha256_of(tmp_path / "sft.validation.jsonl") == snapshot.sha256["validation"]
    assert "excluded 4" in stderr.getvalue()
    assert {r["source"] for r in read_jsonl(out) + read_jsonl(tmp_path / "sft.validation.jsonl")} == {
        "human",
        "past-demos",
    }
    with pytest.raises(CommandError, match="not demonstration batches"):
        make_batch(project, [{"prompt": "Q", "votes": ["a", "a", "a"]}], name="comparison")
        call_command("export_sft", "--project", project.name, "--batches", "comparison", "--out", str(out))
    with pytest.raises(CommandError, match="no batch named"):
        call_command("export_sft", "--project", project.name, "--batches", "missing", "--out", str(out))


def test_the_admin_action_makes_an_sft_snapshot_of_demonstration_batches(project, demos):
    make_demonstration_source(project, "past-demos", [("Say hi.", "Hi!")])
    source = make_source(project, "preference-source", [{"prompt": "Q2", "choice": "a"}])
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    changelist = "/admin/annotation/batch/"
    form = client.post(changelist, {"action": "make_dataset_snapshot", "_selected_action": [demos.pk]})
    assert form.status_code == 200
    assert b"Make an SFT snapshot" in form.content and b"past-demos" in form.content
    assert b"preference-source" not in form.content and b"weighting" not in form.content
    from annotation.models import Batch

    past = Batch.objects.get(name="past-demos")
    response = snapshot_action(client, [demos.pk], [past.pk])
    assert response.status_code == 302, response.content[:3000]
    run_queued_jobs()
    snapshot = DatasetSnapshot.objects.get()
    assert snapshot.kind == "sft" and [s["name"] for s in snapshot.sources] == ["past-demos"]
    listing = client.get("/admin/rewards/datasetsnapshot/")
    assert b"Demonstrations for supervised fine-tuning" in listing.content
    # Demonstrations and judged data in one selection: refused, nothing queued.
    client.post(changelist, {"action": "make_dataset_snapshot", "_selected_action": [demos.pk, source.pk]})
    assert Job.objects.count() == 1
