"""Dataset snapshots from the admin (the Batch action with its form, the read-only snapshot page, downloads) and
from `manage.py export_pairs`."""

import io
import json
from pathlib import Path

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.urls import reverse

from core.models import Job
from rewards.models import DatasetSnapshot
from rewards.selectors import dataset_files
from rewards.services.datasets import dataset_create
from tests.core.jobs import run_queued_jobs
from tests.factories import ProjectFactory
from tests.rewards.test_datasets import agreed, make_batch, read_jsonl, sha256_of


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path) -> Path:
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    Path(settings.ARTIFACTS_DIR).mkdir()
    return Path(settings.ARTIFACTS_DIR)


@pytest.fixture
def batches(project):
    first = make_batch(project, [agreed(f"First {n}?") for n in range(30)], name="first")
    second = make_batch(project, [agreed(f"Second {n}?", "b") for n in range(20)], name="second")
    still_open = make_batch(project, [agreed("Open?")], name="open", closed=False)
    return first, second, still_open


@pytest.fixture
def staff_lead(project, lead):
    """The project's lead, with staff access to the admin (superuser, so Django's model permissions don't matter)."""
    lead.is_staff = lead.is_superuser = True
    lead.save()
    return lead


@pytest.fixture
def admin_client(client, staff_lead):
    client.force_login(staff_lead)
    return client


CHANGELIST = "/admin/annotation/batch/"


def test_batch_action_asks_for_the_rule_then_makes_the_snapshot(admin_client, batches, staff_lead):
    first, second, _ = batches
    selected = {"action": "make_dataset_snapshot", ACTION_CHECKBOX_NAME: [first.pk, second.pk]}
    page = admin_client.post(CHANGELIST, selected)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Make a dataset snapshot" in html and 'name="validation_fraction"' in html
    assert "first" in html and "second" in html
    assert not DatasetSnapshot.objects.exists()

    # The form refuses a fraction out of range and asks again.
    again = admin_client.post(CHANGELIST, {**selected, "apply": "1", "weighting": "vote", "validation_fraction": "0.9"})
    assert again.status_code == 200 and "errorlist" in again.content.decode()
    assert not DatasetSnapshot.objects.exists()

    queued = admin_client.post(
        CHANGELIST,
        {**selected, "apply": "1", "weighting": "dawid_skene", "validation_fraction": "0.2", "seed": "5"},
    )
    # A job: its page follows it, refreshing itself, until the worker has made the snapshot.
    job = Job.objects.get()
    assert queued.status_code == 302
    assert queued["Location"] == reverse("admin:rewards_datasetsnapshot_job", args=[job.pk])
    assert not DatasetSnapshot.objects.exists()
    waiting = admin_client.get(queued["Location"])
    assert waiting.status_code == 200
    html = waiting.content.decode()
    assert 'data-state="queued"' in html and 'http-equiv="refresh"' in html and f"job {job.pk}" in html
    assert run_queued_jobs() == [job.pk]
    done = admin_client.get(queued["Location"])
    snapshot = DatasetSnapshot.objects.get()
    assert done.status_code == 302
    assert done["Location"] == reverse("admin:rewards_datasetsnapshot_change", args=[snapshot.pk])
    assert (snapshot.weighting, snapshot.validation_fraction, snapshot.seed) == ("dawid_skene", 0.2, 5)
    assert set(snapshot.batches.all()) == {first, second}
    assert snapshot.train_count + snapshot.validation_count == 50
    assert snapshot.created_by == staff_lead

    # The snapshot's page shows its figures and lineage, links every file, and serves them.
    detail = admin_client.get(done["Location"])
    html = detail.content.decode()
    assert detail.status_code == 200
    assert f"Dataset snapshot {snapshot.pk}: {snapshot.train_count} train and" in html  # the job's message
    for name in ("train", "validation", "excluded", "manifest"):
        assert snapshot.sha256[name] in html
        url = reverse("admin:rewards_datasetsnapshot_file", args=[snapshot.pk, name])
        assert url in html
        download = admin_client.get(url)
        assert download.status_code == 200
        assert b"".join(download.streaming_content) == dataset_files(snapshot=snapshot)[name].read_bytes()
    assert reverse("admin:annotation_batch_change", args=[first.pk]) in html
    assert admin_client.get(reverse("admin:rewards_datasetsnapshot_changelist")).status_code == 200


def test_batch_action_refuses_open_batches_and_mixed_projects(admin_client, batches):
    first, _, still_open = batches
    response = admin_client.post(
        CHANGELIST, {"action": "make_dataset_snapshot", ACTION_CHECKBOX_NAME: [first.pk, still_open.pk]}, follow=True
    )
    assert "still open: open" in response.content.decode()
    elsewhere = make_batch(ProjectFactory(name="Elsewhere"), [agreed("theirs")])
    response = admin_client.post(
        CHANGELIST, {"action": "make_dataset_snapshot", ACTION_CHECKBOX_NAME: [first.pk, elsewhere.pk]}, follow=True
    )
    assert "batches of one project" in response.content.decode()
    assert not DatasetSnapshot.objects.exists()


def test_batch_action_needs_a_lead_or_ml_engineer_of_the_project(client, project, batches, annotator):
    # Staff with the Batch permissions, but only an annotator on the project.
    annotator.is_staff = True
    annotator.save()
    annotator.user_permissions.add(*Permission.objects.filter(codename__in=["view_batch", "change_batch"]))
    client.force_login(annotator)
    response = client.post(
        CHANGELIST,
        {
            "action": "make_dataset_snapshot",
            ACTION_CHECKBOX_NAME: [batches[0].pk],
            "apply": "1",
            "weighting": "vote",
            "validation_fraction": "0.1",
            "seed": "0",
        },
        follow=True,
    )
    # Django permissions given by hand open nothing: the admin asks the project role (core.admin).
    assert "Log in" in response.content.decode()
    assert not DatasetSnapshot.objects.exists()
    assert not Job.objects.exists()


def test_the_admin_cannot_change_add_or_delete_a_snapshot(admin_client, project, batches):
    snapshot = dataset_create(project=project, batch_ids=[batches[0].pk])
    change = reverse("admin:rewards_datasetsnapshot_change", args=[snapshot.pk])
    page = admin_client.get(change).content.decode()
    assert 'name="seed"' not in page and 'name="_save"' not in page  # a view: no inputs, no save button
    assert admin_client.post(change, {"seed": "7", "weighting": "dawid_skene"}).status_code == 403
    assert admin_client.get(reverse("admin:rewards_datasetsnapshot_add")).status_code == 403
    assert admin_client.post(reverse("admin:rewards_datasetsnapshot_delete", args=[snapshot.pk])).status_code == 403
    snapshot.refresh_from_db()
    assert (snapshot.seed, snapshot.weighting) == (0, "vote")


def test_admin_download_of_a_tampered_file_is_refused(admin_client, project, batches):
    snapshot = dataset_create(project=project, batch_ids=[batches[0].pk])
    path = dataset_files(snapshot=snapshot)["validation"]
    path.write_bytes(path.read_bytes() + b'{"prompt": "slipped in"}\n')
    url = reverse("admin:rewards_datasetsnapshot_file", args=[snapshot.pk, "validation"])
    response = admin_client.get(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:rewards_datasetsnapshot_change", args=[snapshot.pk])
    assert "validation.jsonl was changed" in response.content.decode()


def test_export_pairs_prints_the_id_and_writes_both_splits(project, batches, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    target = tmp_path / "export" / "pairs.jsonl"
    call_command(
        "export_pairs",
        "--project",
        project.name,
        "--batches",
        "first",
        "second",
        "--validation-fraction",
        "0.25",
        "--seed",
        "9",
        "--out",
        str(target),
        stdout=out,
        stderr=err,
    )
    snapshot = DatasetSnapshot.objects.get()
    assert out.getvalue().strip() == str(snapshot.pk)
    assert (snapshot.validation_fraction, snapshot.seed) == (0.25, 9)
    files = dataset_files(snapshot=snapshot)
    validation_out = tmp_path / "export" / "pairs.validation.jsonl"
    assert target.read_bytes() == files["train"].read_bytes()
    assert validation_out.read_bytes() == files["validation"].read_bytes()
    assert sha256_of(target) == snapshot.sha256["train"]
    assert len(read_jsonl(target)) == snapshot.train_count and len(read_jsonl(validation_out)) == (
        snapshot.validation_count
    )
    assert snapshot.train_count + snapshot.validation_count == 50
    assert str(validation_out) in err.getvalue()
    manifest = json.loads(files["manifest"].read_text())
    assert [b["name"] for b in manifest["batches"]] == ["first", "second"]

    # A copy, not a link: editing the exported file leaves the snapshot intact.
    target.write_text("edited\n")
    assert sha256_of(files["train"]) == snapshot.sha256["train"]


def test_export_pairs_defaults_to_every_closed_batch(project, batches, tmp_path):
    out = io.StringIO()
    call_command("export_pairs", "--project", project.name, "--out", str(tmp_path / "all.jsonl"), stdout=out)
    snapshot = DatasetSnapshot.objects.get(pk=int(out.getvalue()))
    assert {b.name for b in snapshot.batches.all()} == {"first", "second"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "Nope"], "No project named 'Nope'"),
        (["--project", "Demo", "--batches", "first", "missing"], "no batch named 'missing'"),
        (["--project", "Demo", "--batches", "open"], "still open: open"),
        (["--project", "Demo", "--validation-fraction", "0.8"], "between 0 and 0.5"),
    ],
)
def test_export_pairs_refuses_bad_input(project, batches, tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("export_pairs", *args, "--out", str(tmp_path / "x.jsonl"), stdout=io.StringIO())
    assert not DatasetSnapshot.objects.exists()
    assert not (tmp_path / "x.jsonl").exists()


def test_every_batch_admin_page_still_loads(admin_client, batches):
    # The export action is added by subclassing annotation's Batch admin: its own pages must be unchanged.
    assert admin_client.get(CHANGELIST).status_code == 200
    assert "make_dataset_snapshot" in admin_client.get(CHANGELIST).content.decode()
    assert admin_client.get(reverse("admin:annotation_batch_change", args=[batches[0].pk])).status_code == 200


def test_a_snapshot_job_that_fails_says_why_on_its_page(admin_client, project):
    split = make_batch(project, [{"prompt": "p", "votes": ["a", "b", "tie"]}], name="split")
    queued = admin_client.post(
        CHANGELIST,
        {
            "action": "make_dataset_snapshot",
            ACTION_CHECKBOX_NAME: [split.pk],
            "apply": "1",
            "weighting": "vote",
            "validation_fraction": "0.1",
            "seed": "0",
        },
    )
    assert queued.status_code == 302
    run_queued_jobs()
    page = admin_client.get(queued["Location"])
    html = page.content.decode()
    assert page.status_code == 200 and 'data-state="failed"' in html and 'http-equiv="refresh"' not in html
    assert "No snapshot was made: These batches give no preference pairs (1 split)" in html
    assert not DatasetSnapshot.objects.exists()
