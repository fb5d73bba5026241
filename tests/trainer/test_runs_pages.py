"""The run pages through Django's test client: who may open them, the strict CSP, what the HTML carries (the
JavaScript and charts are exercised in Chromium by tests/e2e/test_run_page.py)."""

import json
import re

import pytest
from django.test import Client

from tests.trainer.runs_fixtures import finished_reward_model, make_snapshot
from trainer.models import TrainingRun

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("artifacts")]


@pytest.fixture
def run(project) -> TrainingRun:
    run = finished_reward_model(make_snapshot(project))
    TrainingRun.objects.filter(pk=run.pk).update(
        evaluation={"accuracy": 0.8125, "n_pairs": 16},
        error="",
        config={"base_model": "</script><script>alert(1)</script>", "learning_rate": 1e-5},
    )
    run.refresh_from_db()
    return run


def browser_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_anonymous_users_are_sent_to_log_in(run):
    response = Client().get(f"/runs/{run.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_ml_engineers_leads_and_superusers_see_the_page_annotators_and_strangers_do_not(
    run, ml_engineer, lead, annotator, stranger, superuser
):
    for user in (ml_engineer, lead, superuser):
        assert browser_for(user).get(f"/runs/{run.pk}/").status_code == 200, user
    assert browser_for(annotator).get(f"/runs/{run.pk}/").status_code == 403
    assert browser_for(stranger).get(f"/runs/{run.pk}/").status_code == 404  # no role there: as if missing
    assert browser_for(ml_engineer).get("/runs/999999/").status_code == 404


def test_the_page_has_the_strict_csp_no_inline_script_and_escaped_text(run, ml_engineer):
    response = browser_for(ml_engineer).get(f"/runs/{run.pk}/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    html = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
    # Only external scripts and the json_script data block.
    for attributes, _body in scripts:
        assert "src=" in attributes or 'type="application/json"' in attributes, attributes
    assert "frontend/vendor/chart.umd.min.js" in html and "frontend/runs.js" in html
    assert "<script>alert(1)</script>" not in html
    data = json.loads(re.search(r'<script id="run-page" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert data == {
        "id": run.pk,
        "status": "succeeded",
        "active": False,
        "can_cancel": True,
        "has_lineage": False,
        # Where the script links the lineage's batches and criteria versions once the run writes it (staff only).
        "admin_urls": {
            "batch": "/admin/annotation/batch/{id}/change/",
            "criteria": "/admin/annotation/criteriaversion/{id}/change/",
        },
    }
    assert "0.8125" in html  # the evaluation table
    assert f"Snapshot {run.snapshot_id}" in html
    assert "batch" in html.lower()


def test_leads_get_no_cancel_button(run, lead):
    html = browser_for(lead).get(f"/runs/{run.pk}/").content.decode()
    assert 'id="run-cancel"' not in html
    assert '"can_cancel": false' in html


def test_the_list_shows_the_runs_a_user_may_see(run, ml_engineer, annotator):
    html = browser_for(ml_engineer).get("/runs/", {"project": run.project_id}).content.decode()
    assert f'href="/runs/{run.pk}/"' in html
    assert f'href="/runs/{run.pk}/"' not in browser_for(annotator).get("/runs/").content.decode()


@pytest.mark.parametrize("value", ["99999999999999999999", "²", "-1", "x"])
def test_odd_query_ids_are_ignored_not_a_server_error(value, ml_engineer, run):
    """?project= on the run list and ?like=/?snapshot=/?reward_model= on the start form: not an id, no filter."""
    client = Client()
    ml_engineer.is_staff = True
    ml_engineer.save(update_fields=["is_staff"])
    client.force_login(ml_engineer)
    assert client.get("/runs/", {"project": value}).status_code == 200
    for name in ("like", "snapshot", "reward_model"):
        assert client.get("/admin/trainer/trainingrun/start/", {name: value}).status_code == 200
