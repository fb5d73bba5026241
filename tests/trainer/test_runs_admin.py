"""The runs admin through Django's test client, as a person uses it: the list, the start form (from a snapshot, like
a run, PPO from a reward model), its refusals with nothing queued, the run page with lineage, cancelling; and who
may do what (ML engineers of the project start and cancel; leads look; annotators see nothing)."""

import pytest
from django.test import Client
from django.utils import timezone

from rewards.selectors import dataset_files
from tests.trainer.runs_fixtures import finished_reward_model
from trainer.models import Kind, RunMetric, Status, TrainingRun

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("artifacts", "model_roots")]
START = "/admin/trainer/trainingrun/start/"
CHANGELIST = "/admin/trainer/trainingrun/"


def staff_client(user) -> Client:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def mle_admin(ml_engineer):
    return staff_client(ml_engineer)


@pytest.fixture
def lead_admin(lead):
    return staff_client(lead)


def post_start(client, snapshot, *, query="", **fields):
    data = {"kind": "reward_model", "snapshot": snapshot.pk, "base_model": "tiny", "settings": "", **fields}
    return client.post(START + query, data)


def test_an_ml_engineer_starts_a_run_from_the_snapshot_page(
    superuser, mle_admin, snapshot, sent, django_capture_on_commit_callbacks
):
    # The snapshot's admin page links to the form (rewards' admin decides who sees that page: a superuser does).
    root = Client()
    root.force_login(superuser)
    page = root.get(f"/admin/rewards/datasetsnapshot/{snapshot.pk}/change/")
    assert page.status_code == 200
    assert f'href="{START}?snapshot={snapshot.pk}"' in page.content.decode()
    form = mle_admin.get(START, {"snapshot": snapshot.pk})
    assert form.status_code == 200
    assert f'<option value="{snapshot.pk}" selected>' in form.content.decode()
    assert "use_margin" in form.content.decode()  # the settings reference lists each kind's settings
    with django_capture_on_commit_callbacks(execute=True):
        response = post_start(mle_admin, snapshot, settings="learning_rate=2e-5\nmax_steps=4\nuse_margin=true\n")
    run = TrainingRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{CHANGELIST}{run.pk}/change/"
    assert (run.kind, run.status, run.config["learning_rate"], run.config["max_steps"], run.config["use_margin"]) == (
        "reward_model",
        "queued",
        2e-5,
        4,
        True,
    )
    assert sent == [[run.pk]]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"settings": "learning_rate=-1"}, "learning_rate: Must be greater than 0"),
        ({"settings": "beta=0.3"}, "beta: Unknown setting"),
        ({"settings": "not a setting line"}, "Expected key=value"),
        ({"settings": "epochs=lots"}, "epochs: Expected an integer"),
        ({"base_model": ""}, "This field is required"),
        ({"kind": "ppo"}, "needs a succeeded reward-model run"),
    ],
)
def test_the_start_form_shows_errors_and_queues_nothing(mle_admin, snapshot, sent, fields, message):
    response = post_start(mle_admin, snapshot, **fields)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert TrainingRun.objects.count() == 0
    assert sent == []


def test_a_tampered_snapshot_is_refused_in_the_form(mle_admin, snapshot, sent):
    path = dataset_files(snapshot=snapshot)["validation"]
    path.write_bytes(path.read_bytes() + b"\n")
    response = post_start(mle_admin, snapshot)
    assert "Refused: Dataset snapshot" in response.content.decode()
    assert TrainingRun.objects.count() == 0
    assert sent == []


def test_start_a_run_like_this_one(mle_admin, snapshot, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_start(mle_admin, snapshot, kind="dpo", settings="beta=0.25\nmax_steps=7")
    first = TrainingRun.objects.get()
    page = mle_admin.get(f"{CHANGELIST}{first.pk}/change/").content.decode()
    assert f"{START}?like={first.pk}" in page
    form = mle_admin.get(START, {"like": first.pk}).content.decode()
    assert "beta=0.25" in form and "max_steps=7" in form
    assert '<option value="dpo" selected>' in form
    with django_capture_on_commit_callbacks(execute=True):
        post_start(mle_admin, snapshot, query=f"?like={first.pk}", kind="dpo", settings="beta=0.25\nmax_steps=7")
    second = TrainingRun.objects.exclude(pk=first.pk).get()
    assert second.based_on == first
    assert second.config == first.config


def test_train_ppo_from_a_reward_model(mle_admin, snapshot, sent, django_capture_on_commit_callbacks):
    reward_model = finished_reward_model(snapshot)
    page = mle_admin.get(f"{CHANGELIST}{reward_model.pk}/change/").content.decode()
    link = f"{START}?reward_model={reward_model.pk}&amp;kind=ppo"
    assert link in page
    form = mle_admin.get(START, {"reward_model": reward_model.pk, "kind": "ppo"}).content.decode()
    assert '<option value="ppo" selected>' in form
    assert f'<option value="{reward_model.pk}" selected>' in form
    with django_capture_on_commit_callbacks(execute=True):
        response = post_start(mle_admin, snapshot, kind="ppo", reward_model=reward_model.pk, settings="max_steps=2")
    assert response.status_code == 302
    run = TrainingRun.objects.get(kind=Kind.PPO)
    assert run.reward_model == reward_model
    assert sent == [[run.pk]]


def test_the_run_page_shows_progress_evaluation_metrics_and_lineage(mle_admin, snapshot):
    run = finished_reward_model(snapshot)
    TrainingRun.objects.filter(pk=run.pk).update(
        step=10,
        total_steps=10,
        evaluation={"accuracy": 0.75, "n_pairs": 8},
        lineage={"snapshot": {"id": snapshot.pk, "sha256": snapshot.sha256}},
    )
    RunMetric.objects.bulk_create([RunMetric(run=run, step=s, name="loss", value=1 / s) for s in range(1, 11)])
    page = mle_admin.get(f"{CHANGELIST}{run.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "accuracy" in html and "0.75" in html
    assert "Metrics (10 points)" in html
    assert snapshot.sha256["train"] in html
    assert f"/runs/{run.pk}/" in html  # the live page
    changelist = mle_admin.get(CHANGELIST).content.decode()
    assert "10 / 10 (100%)" in changelist
    assert "Start a run" in changelist


def test_cancel_button_and_action(mle_admin, snapshot):
    running = TrainingRun.objects.create(
        project_id=snapshot.project_id, kind=Kind.DPO, status=Status.RUNNING, config={}, snapshot=snapshot,
        time_limit_seconds=60, started_at=timezone.now(),
    )  # fmt: skip
    queued = TrainingRun.objects.create(
        project_id=snapshot.project_id, kind=Kind.DPO, config={}, snapshot=snapshot, time_limit_seconds=60
    )
    assert "Cancel this run" in mle_admin.get(f"{CHANGELIST}{running.pk}/change/").content.decode()
    response = mle_admin.post(f"{CHANGELIST}{running.pk}/cancel/", follow=True)
    assert "asked to stop at its next step" in response.content.decode()
    running.refresh_from_db()
    assert running.cancel_requested and running.status == Status.RUNNING
    response = mle_admin.post(CHANGELIST, {"action": "cancel_runs", "_selected_action": [queued.pk]}, follow=True)
    assert "Cancel requested for 1 run(s)." in response.content.decode()
    queued.refresh_from_db()
    assert queued.status == Status.CANCELLED


def test_leads_look_but_cannot_start_or_cancel(lead_admin, snapshot, sent):
    run = TrainingRun.objects.create(
        project_id=snapshot.project_id, kind=Kind.DPO, status=Status.RUNNING, config={}, snapshot=snapshot,
        time_limit_seconds=60, started_at=timezone.now(),
    )  # fmt: skip
    changelist = lead_admin.get(CHANGELIST)
    assert changelist.status_code == 200
    assert "Start a run" not in changelist.content.decode()
    assert "cancel_runs" not in changelist.content.decode()
    page = lead_admin.get(f"{CHANGELIST}{run.pk}/change/").content.decode()
    assert "Cancel this run" not in page and "like=" not in page
    assert lead_admin.get(START).status_code == 403
    assert post_start(lead_admin, snapshot).status_code == 403
    assert lead_admin.post(f"{CHANGELIST}{run.pk}/cancel/").status_code == 403
    run.refresh_from_db()
    assert not run.cancel_requested
    assert TrainingRun.objects.count() == 1 and sent == []


def test_annotators_and_other_projects_see_no_runs(client, annotator, snapshot):
    from annotation.services import member_add
    from tests.factories import ProjectFactory, UserFactory

    finished_reward_model(snapshot)
    annotator_admin = staff_client(annotator)  # a staff flag without a staff role opens nothing
    assert annotator_admin.get(CHANGELIST).status_code == 302
    assert annotator_admin.get(START).status_code == 302
    outsider = UserFactory(username="outsider")
    member_add(project=ProjectFactory(name="Elsewhere"), username=outsider.username, role="ml_engineer")
    outsider_admin = staff_client(outsider)
    assert outsider_admin.get(CHANGELIST).status_code == 200
    assert "0 training runs" in outsider_admin.get(CHANGELIST).content.decode()
    # The start form offers only the snapshots of their own projects, and refuses this one.
    response = post_start(outsider_admin, snapshot)
    assert "Select a valid choice" in response.content.decode()
    assert TrainingRun.objects.count() == 1
