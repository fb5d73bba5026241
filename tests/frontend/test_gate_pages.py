"""The gate page (criteria in words with their evidence, decisions, the reviewers' form, overrides in red) and the
release history (download links only once a package is written), as a reviewer, an ML engineer and an annotator
see them."""

import pytest
from django.test import Client

from evaluation.models import EvaluationBatch, EvaluationSettings, Release
from evaluation.services.gate import gate_decide, gate_policy_create, release
from tests.evaluation.results_world import add_evaluation_batch, add_player, make_world
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

POLICY = {"min_win_rate_lower": 0.55, "min_judgments": 100, "blocking_flags": ["stratum_regression"]}
REASON = "Usage prompts are not served by this deployment, agreed with the product lead."


def _member(project, username: str, role: str):
    from annotation.services import member_add

    user = UserFactory(username=username)
    member_add(project=project, username=username, role=role)
    return user


def _page(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def reviewer(project):
    return _member(project, "rev", "reviewer")


@pytest.fixture
def gate_world(project, reviewer):
    EvaluationSettings.objects.create(project=project, bootstrap_resamples=200)
    world = make_world(project, prompts=60)
    base = add_player(world, step=None)
    policy = gate_policy_create(project=project, values=POLICY, created_by=reviewer)
    batches = {}
    for name, share in (("winner", 0.7), ("loser", 0.3)):
        eb = add_evaluation_batch(
            world, candidate=add_player(world, step=100 if name == "winner" else 200), baseline=base, share=share
        )
        EvaluationBatch.objects.filter(pk=eb.pk).update(gate_policy=policy)
        eb.refresh_from_db()
        batches[name] = eb
    return batches


def _url(project, eb) -> str:
    return f"/projects/{project.pk}/gate/{eb.pk}/"


def test_the_gate_page_shows_each_criterion_in_words_and_the_reviewer_decides(project, gate_world, reviewer):
    eb = gate_world["winner"]
    html = _page(reviewer).get(_url(project, eb)).content.decode()
    assert "Every criterion passes." in html
    assert 'data-criterion="min_win_rate_lower"' in html and "passed" in html and "failed</span>" not in html
    assert "judgments on 60 prompts" in html  # the evidence
    assert 'id="decide-form"' in html and "policy <strong>v1</strong>" in html
    response = _page(reviewer).post(_url(project, eb), {"verdict": "approve", "note": "Clear win on every stratum."})
    assert response.status_code == 302
    html = _page(reviewer).get(_url(project, eb)).content.decode()
    assert "Approved</strong> by rev" in html and "Release this checkpoint" in html
    decision_id = eb.decisions.get().pk
    assert _page(reviewer).post(_url(project, eb), {"release": decision_id}).status_code == 302
    assert Release.objects.get().decision_id == decision_id


def test_a_failing_gate_is_refused_on_the_page_and_an_override_shows_in_red(project, gate_world, reviewer):
    eb = gate_world["loser"]
    html = _page(reviewer).get(_url(project, eb)).content.decode()
    assert "The gate fails on" in html and 'class="failed">failed</span>' in html
    refused = _page(reviewer).post(_url(project, eb), {"verdict": "approve", "note": "Ship it."})
    assert refused.status_code == 409
    assert 'data-code="gate_failed"' in refused.content.decode()
    assert not eb.decisions.exists()
    done = _page(reviewer).post(
        _url(project, eb), {"verdict": "approve", "note": "Ship it.", "override_reason": REASON}
    )
    assert done.status_code == 302
    html = _page(reviewer).get(_url(project, eb)).content.decode()
    assert "Override of a failed criterion" in html and REASON in html
    release(decision=eb.decisions.get(), released_by=reviewer)
    history = _page(reviewer).get(f"/projects/{project.pk}/releases/").content.decode()
    assert 'class="override-row"' in history and REASON in history


def test_the_release_history_links_a_package_only_once_it_is_written(project, gate_world, reviewer, ml_engineer):
    eb = gate_world["winner"]
    decision = gate_decide(evaluation_batch=eb, reviewer=reviewer, verdict="approve", note="Good.")
    made = release(decision=decision, released_by=reviewer)
    Release.objects.filter(pk=made.pk).update(package_path="")
    html = _page(ml_engineer).get(f"/projects/{project.pk}/releases/").content.decode()
    assert f'data-release="{made.pk}"' in html and "download</a>" not in html and "<strong>current</strong>" in html
    Release.objects.filter(pk=made.pk).update(package_path=f"handoff/{made.pk}.tar.gz", package_sha256="0" * 64)
    html = _page(ml_engineer).get(f"/projects/{project.pk}/releases/").content.decode()
    try:
        from django.urls import reverse

        url = reverse("evaluation:release-package", args=[made.pk])
    except Exception:  # the package download is not routed yet: no link, "built"
        assert "download</a>" not in html and "built" in html
    else:
        assert f'href="{url}"' in html


def test_engineers_read_the_gate_but_cannot_decide_and_annotators_see_nothing(
    project, gate_world, ml_engineer, lead, annotator
):
    eb = gate_world["winner"]
    for user in (ml_engineer, lead):
        html = _page(user).get(_url(project, eb)).content.decode()
        assert "Every criterion passes." in html and 'id="decide-form"' not in html
        refused = _page(user).post(_url(project, eb), {"verdict": "approve", "note": "Mine is good."})
        assert refused.status_code == 403
    assert not eb.decisions.exists()
    assert _page(annotator).get(_url(project, eb)).status_code == 403
    assert _page(annotator).get(f"/projects/{project.pk}/releases/").status_code == 403


def test_the_checkpoints_page_links_each_batch_to_its_gate(project, gate_world, ml_engineer):
    from evaluation.services.leaderboards import leaderboard_refresh

    leaderboard_refresh(project_id=project.pk)
    html = _page(ml_engineer).get(f"/projects/{project.pk}/checkpoints/").content.decode()
    for eb in gate_world.values():
        assert f'href="{_url(project, eb)}"' in html
    assert f'href="/projects/{project.pk}/releases/"' in html
