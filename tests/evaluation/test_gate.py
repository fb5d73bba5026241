"""The deployment gate, as reviewers, ML engineers and leads meet it: gate policies (versioned, pinned when an
evaluation batch is made), the checks of a batch, decisions with separation of duties and overrides, releases (one
current per project), the audit log and its immutability (ORM, raw SQL, admin, API). Worlds from results_world.py."""

import csv
import io

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test import Client

from annotation.models import Batch
from evaluation.models import AuditEvent, EvaluationBatch, EvaluationSettings, GateDecision, GatePolicy, Release
from evaluation.services.eval_batches import eval_batch_make
from evaluation.services.gate import gate_checks, gate_policy_create
from tests.evaluation.results_world import add_evaluation_batch, add_player, make_world
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

POLICY = {
    "min_win_rate_lower": 0.55,
    "max_red_team_failure": 0.2,
    "min_stratum_win_rate": 0.5,
    "min_judgments": 100,
    "blocking_flags": ["stratum_regression"],
    "note": "The bar for the first release.",
}
REASON = "The losing stratum is out of scope for this deployment, agreed with the safety team."


def _member(project, username: str, role: str):
    from annotation.services import member_add

    user = UserFactory(username=username)
    member_add(project=project, username=username, role=role)
    return user


def _client(user) -> Client:
    from rest_framework.authtoken.models import Token

    token, _ = Token.objects.get_or_create(user=user)
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}")


@pytest.fixture
def reviewer(project):
    return _member(project, "rev", "reviewer")


@pytest.fixture
def world(project):
    EvaluationSettings.objects.create(project=project, bootstrap_resamples=200)
    w = make_world(project, prompts=60)
    w.base = add_player(w, step=None)
    return w


def _pinned(world, *, share, policy, candidate=None, baseline=None) -> EvaluationBatch:
    """An evaluation batch judged by `policy` (as eval_batch_make pins it), the candidate a checkpoint."""
    candidate = candidate or add_player(world, step=100 * (len(world.players) + 1))
    eb = add_evaluation_batch(world, candidate=candidate, baseline=baseline or world.base, share=share)
    EvaluationBatch.objects.filter(pk=eb.pk).update(gate_policy=policy)
    eb.refresh_from_db()
    return eb


def _decide(client, eb, verdict="approve", note="Wins clearly on every stratum.", **extra):
    return client.post(
        f"/api/v1/evaluation-batches/{eb.pk}/decisions/",
        {"verdict": verdict, "note": note, **extra},
        content_type="application/json",
    )


def _release(client, decision_id):
    return client.post(f"/api/v1/decisions/{decision_id}/release/")


def _kinds(project) -> list[str]:
    return list(AuditEvent.objects.filter(project=project).order_by("pk").values_list("kind", flat=True))


# --- policies --------------------------------------------------------------------------------------------------


def test_policies_are_versioned_and_validated_through_the_api(project, reviewer, lead, ml_engineer):
    first = _client(reviewer).post(
        f"/api/v1/projects/{project.pk}/gate-policies/", POLICY, content_type="application/json"
    )
    assert first.status_code == 201, first.content
    assert first.json()["version"] == 1
    second = _client(lead).post(
        f"/api/v1/projects/{project.pk}/gate-policies/", {"min_judgments": 10}, content_type="application/json"
    )
    assert second.json()["version"] == 2
    refused = _client(ml_engineer).post(
        f"/api/v1/projects/{project.pk}/gate-policies/", {"min_judgments": 10}, content_type="application/json"
    )
    assert refused.status_code == 403
    bad = _client(reviewer).post(
        f"/api/v1/projects/{project.pk}/gate-policies/",
        {"min_win_rate_lower": 1.5, "blocking_flags": ["nonsense"]},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_gate_policy"
    assert set(bad.json()["errors"]) == {"min_win_rate_lower", "blocking_flags"}
    empty = _client(reviewer).post(f"/api/v1/projects/{project.pk}/gate-policies/", {}, content_type="application/json")
    assert empty.status_code == 400
    listed = _client(ml_engineer).get(f"/api/v1/projects/{project.pk}/gate-policies/").json()
    assert [p["version"] for p in listed] == [2, 1]
    assert _kinds(project) == ["policy_created", "policy_created"]
    policy = GatePolicy.objects.get(project=project, version=1)
    policy.min_judgments = 1
    with pytest.raises(ValueError):
        policy.save()


def test_a_batch_is_pinned_to_the_policy_current_when_it_is_made_and_a_later_one_never_rejudges_it(
    project, world, reviewer
):
    candidate = add_player(world, step=100)
    unpinned = eval_batch_make(candidate=candidate.sampled, baseline=world.base.sampled, name="before")
    assert unpinned.gate_policy is None
    v1 = gate_policy_create(project=project, values={"min_judgments": 10}, created_by=reviewer)
    pinned = eval_batch_make(candidate=candidate.sampled, baseline=world.base.sampled, name="after")
    assert pinned.gate_policy == v1
    gate_policy_create(project=project, values={"min_judgments": 10_000}, created_by=reviewer)
    pinned.refresh_from_db()
    assert pinned.gate_policy == v1
    assert [c["threshold"] for c in gate_checks(evaluation_batch=pinned) if c["criterion"] == "min_judgments"] == [10]
    gate = _client(reviewer).get(f"/api/v1/evaluation-batches/{unpinned.pk}/gate/").json()
    assert gate["checks"] is None and gate["problem"]["code"] == "no_gate_policy"
    Batch.objects.filter(pk=unpinned.batch_id).update(status=Batch.Status.CLOSED)
    refused = _decide(_client(reviewer), unpinned)
    assert refused.status_code == 409 and refused.json()["code"] == "no_gate_policy"


# --- checks and decisions ---------------------------------------------------------------------------------------


def test_checks_are_computed_from_the_results(project, world, reviewer):
    policy = gate_policy_create(project=project, values=POLICY, created_by=reviewer)
    eb = _pinned(world, share=0.7, policy=policy)
    gate = _client(reviewer).get(f"/api/v1/evaluation-batches/{eb.pk}/gate/").json()
    by = {c["criterion"]: c for c in gate["checks"]}
    assert by["min_win_rate_lower"]["passed"] and 0.55 < by["min_win_rate_lower"]["value"] < 0.7
    assert by["baseline"]["passed"]
    assert by["max_red_team_failure"] == {**by["max_red_team_failure"], "value": 0.0, "passed": True}
    assert {k for k in by if k.startswith("min_stratum_win_rate:")} == {
        "min_stratum_win_rate:usage",
        "min_stratum_win_rate:adversarial",
        "min_stratum_win_rate:red_team",
    }
    assert by["min_judgments"]["value"] == 180 and by["min_judgments"]["passed"]
    assert by["blocking_flags"]["passed"]
    assert gate["passed"] is True
    losing = _pinned(world, share=0.3, policy=policy)
    checks = {c["criterion"]: c for c in gate_checks(evaluation_batch=losing)}
    assert not checks["min_win_rate_lower"]["passed"]
    assert not checks["min_stratum_win_rate:usage"]["passed"]
    assert not checks["blocking_flags"]["passed"] and checks["blocking_flags"]["value"] == ["stratum_regression"]


def test_the_reward_length_correlation_is_checked(project, world, reviewer):
    policy = gate_policy_create(project=project, values={"max_reward_length_spearman": 0.3}, created_by=reviewer)
    stored = add_player(world, step=100)
    stored.sampled.run.evaluation = {"reward_length_spearman": 0.9}
    stored.sampled.run.save(update_fields=["evaluation"])
    eb = _pinned(world, share=0.7, policy=policy, candidate=stored)
    (check,) = gate_checks(evaluation_batch=eb)
    assert check["value"] == 0.9 and not check["passed"]
    unmeasured = _pinned(world, share=0.7, policy=policy)
    (check,) = gate_checks(evaluation_batch=unmeasured)
    assert check["value"] is None and not check["passed"]


def test_a_reviewer_approves_and_releases_a_winning_candidate(project, world, reviewer):
    policy = gate_policy_create(project=project, values=POLICY, created_by=reviewer)
    eb = _pinned(world, share=0.7, policy=policy)
    decided = _decide(_client(reviewer), eb)
    assert decided.status_code == 201, decided.content
    body = decided.json()
    assert body["verdict"] == "approve" and body["override"] is False and body["failing"] == []
    assert body["policy_version"] == 1
    released = _release(_client(reviewer), body["id"])
    assert released.status_code == 201, released.content
    release = Release.objects.get(pk=released.json()["id"])
    assert release.checkpoint == eb.candidate.run.sampled_checkpoint and release.superseded_at is None
    assert _kinds(project) == ["policy_created", "decision", "release"]
    event = AuditEvent.objects.get(project=project, kind="decision")
    assert event.actor == reviewer and event.policy_version == 1 and event.checkpoint_id == release.checkpoint_id
    assert event.payload["win_rate"]["value"] == pytest.approx(0.7) and event.payload["checks"]
    again = _release(_client(reviewer), body["id"])
    assert again.status_code == 409 and again.json()["code"] == "already_released"
    listed = _client(reviewer).get(f"/api/v1/projects/{project.pk}/releases/").json()
    assert [r["id"] for r in listed] == [release.pk] and listed[0]["current"]


def test_a_rejection_cannot_be_released(project, world, reviewer):
    policy = gate_policy_create(project=project, values=POLICY, created_by=reviewer)
    eb = _pinned(world, share=0.7, policy=policy)
    decided = _decide(_client(reviewer), eb, verdict="reject", note="Not before the red-team rerun.")
    assert decided.status_code == 201
    refused = _release(_client(reviewer), decided.json()["id"])
    assert refused.status_code == 409 and refused.json()["code"] == "not_approved"
    assert not Release.objects.exists()
    assert _kinds(project) == ["policy_created", "decision", "release_refused"]


def test_ml_engineers_and_leads_cannot_decide_or_release(project, world, reviewer, lead, ml_engineer):
    policy = gate_policy_create(project=project, values=POLICY, created_by=reviewer)
    eb = _pinned(world, share=0.7, policy=policy)
    for user in (lead, ml_engineer):
        refused = _decide(_client(user), eb)
        assert refused.status_code == 403 and refused.json()["code"] == "not_allowed", refused.content
    assert not GateDecision.objects.exists()
    decision_id = _decide(_client(reviewer), eb).json()["id"]
    for user in (lead, ml_engineer):
        refused = _release(_client(user), decision_id)
        assert refused.status_code == 403 and refused.json()["code"] == "not_allowed"
    assert not Release.objects.exists()
    kinds = _kinds(project)
    assert kinds.count("release_refused") == 4 and "release" not in kinds
    with pytest.raises(CommandError, match="not_allowed"):
        call_command("release", decision=decision_id, user=ml_engineer.username)
    assert not Release.objects.exists()


def test_a_reviewer_who_started_a_run_in_the_lineage_cannot_approve_or_release(project, world, reviewer):
    policy = gate_policy_create(project=project, values=POLICY, created_by=reviewer)
    eb = _pinned(world, share=0.7, policy=policy)
    world.policy_run.created_by = reviewer
    world.policy_run.save(update_fields=["created_by"])
    refused = _decide(_client(reviewer), eb)
    assert refused.status_code == 403 and refused.json()["code"] == "conflict_of_interest"
    assert world.policy_run.pk in refused.json()["runs"]
    assert not GateDecision.objects.exists()
    other = _member(project, "rev2", "reviewer")
    decision_id = _decide(_client(other), eb).json()["id"]
    refused = _release(_client(reviewer), decision_id)
    assert refused.status_code == 403 and refused.json()["code"] == "conflict_of_interest"
    assert _release(_client(other), decision_id).status_code == 201


def test_an_open_evaluation_is_unfinished(project, world, reviewer):
    policy = gate_policy_create(project=project, values=POLICY, created_by=reviewer)
    eb = _pinned(world, share=0.7, policy=policy)
    Batch.objects.filter(pk=eb.batch_id).update(status=Batch.Status.OPEN)
    refused = _decide(_client(reviewer), eb)
    assert refused.status_code == 409 and refused.json()["code"] == "evaluation_unfinished"


def test_a_failing_gate_is_refused_and_an_override_with_a_reason_releases_marked(project, world, reviewer):
    policy = gate_policy_create(project=project, values=POLICY, created_by=reviewer)
    eb = _pinned(world, share=0.3, policy=policy)
    client = _client(reviewer)
    refused = _decide(client, eb)
    assert refused.status_code == 409 and refused.json()["code"] == "gate_failed"
    assert "min_win_rate_lower" in refused.json()["failing"]
    short = _decide(client, eb, override_reason="Because I say so")
    assert short.status_code == 409 and short.json()["code"] == "gate_failed"
    assert not GateDecision.objects.exists()
    rejected = _decide(client, eb, verdict="reject", note="Loses on usage prompts.")
    assert rejected.status_code == 201 and rejected.json()["override"] is False
    approved = _decide(client, eb, override_reason=REASON)
    assert approved.status_code == 201, approved.content
    assert approved.json()["override"] is True and approved.json()["override_reason"] == REASON
    released = _release(client, approved.json()["id"])
    assert released.status_code == 201
    assert released.json()["override"] is True
    assert Release.objects.get().override
    # The earlier rejection is not the latest decision: it cannot be released, whatever its verdict.
    assert _release(client, rejected.json()["id"]).json()["code"] in ("not_approved", "decision_superseded")


def test_one_current_release_per_project_and_the_next_supersedes_it(project, world, reviewer):
    policy = gate_policy_create(project=project, values=POLICY, created_by=reviewer)
    first_eb = _pinned(world, share=0.7, policy=policy)
    first = _release(_client(reviewer), _decide(_client(reviewer), first_eb).json()["id"]).json()
    released_player = world.players[-1]
    # The next candidate must be judged against the released checkpoint: against the base model it fails.
    against_base = _pinned(world, share=0.7, policy=policy)
    checks = {c["criterion"]: c for c in gate_checks(evaluation_batch=against_base)}
    assert not checks["baseline"]["passed"]
    # The released candidate's own batch, made before the release, is still judged against what was released then.
    assert {c["criterion"]: c for c in gate_checks(evaluation_batch=first_eb)}["baseline"]["passed"]
    second_eb = _pinned(world, share=0.7, policy=policy, baseline=released_player)
    second = _release(_client(reviewer), _decide(_client(reviewer), second_eb).json()["id"])
    assert second.status_code == 201, second.content
    releases = {r.pk: r for r in Release.objects.all()}
    assert releases[first["id"]].superseded_at is not None
    assert releases[second.json()["id"]].superseded_at is None
    assert Release.objects.filter(project=project, superseded_at__isnull=True).count() == 1
    kinds = _kinds(project)
    assert kinds.count("superseded") == 1 and kinds.count("release") == 2
    with pytest.raises(IntegrityError), transaction.atomic():
        Release.objects.filter(pk=first["id"]).update(superseded_at=None)


def test_release_through_the_command(project, world, reviewer):
    policy = gate_policy_create(project=project, values=POLICY, created_by=reviewer)
    eb = _pinned(world, share=0.7, policy=policy)
    decision_id = _decide(_client(reviewer), eb).json()["id"]
    out = io.StringIO()
    call_command("release", decision=decision_id, user=reviewer.username, stdout=out, stderr=io.StringIO())
    assert Release.objects.get(pk=int(out.getvalue())).decision_id == decision_id


# --- the audit log ------------------------------------------------------------------------------------------------


@pytest.fixture
def audited(project, world, reviewer):
    policy = gate_policy_create(project=project, values=POLICY, created_by=reviewer)
    eb = _pinned(world, share=0.7, policy=policy)
    _release(_client(reviewer), _decide(_client(reviewer), eb).json()["id"])
    return AuditEvent.objects.filter(project=project).order_by("pk")


def test_the_audit_log_reads_as_json_and_csv(project, audited, ml_engineer, annotator, stranger):
    events = _client(ml_engineer).get(f"/api/v1/projects/{project.pk}/audit/").json()
    assert [e["kind"] for e in events] == ["release", "decision", "policy_created"]
    response = _client(ml_engineer).get(f"/api/v1/projects/{project.pk}/audit/?format=csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["kind"] for r in rows] == ["release", "decision", "policy_created"]
    assert rows[0]["actor"] == "rev" and '"override": false' in rows[0]["payload"]
    assert _client(annotator).get(f"/api/v1/projects/{project.pk}/audit/").status_code == 403
    assert _client(stranger).get(f"/api/v1/projects/{project.pk}/audit/").status_code == 404


def test_the_orm_cannot_change_or_delete_audit_rows(audited):
    event = audited.first()
    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(ValueError):
        event.delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(kind="edited")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).kind == "policy_created"


def test_the_database_refuses_raw_update_and_delete(audited):
    count = audited.count()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE evaluation_auditevent SET kind = 'edited'")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM evaluation_auditevent")
    assert AuditEvent.objects.count() == count
    assert not AuditEvent.objects.filter(kind="edited").exists()


def test_the_admin_and_the_api_have_no_way_to_change_the_audit_log(project, audited, reviewer, superuser):
    event = audited.first()
    for user in (reviewer, superuser):
        client = Client()
        client.force_login(user)
        assert client.get(f"/admin/evaluation/auditevent/{event.pk}/change/").status_code == 200  # a read-only view
        assert client.post(f"/admin/evaluation/auditevent/{event.pk}/change/", {"kind": "x"}).status_code == 403
        assert client.get(f"/admin/evaluation/auditevent/{event.pk}/delete/").status_code == 403
        assert client.post(f"/admin/evaluation/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
        changelist = client.post(
            "/admin/evaluation/auditevent/", {"action": "delete_selected", "_selected_action": [event.pk]}
        )
        assert changelist.status_code in (200, 302)
        assert client.get("/admin/evaluation/auditevent/add/").status_code == 403
        api = _client(user)
        for method in ("put", "patch", "delete"):
            response = getattr(api, method)(
                f"/api/v1/projects/{project.pk}/audit/", {}, content_type="application/json"
            )
            assert response.status_code == 405, (method, response.status_code)
    assert AuditEvent.objects.filter(pk=event.pk, kind="policy_created").exists()
    assert AuditEvent.objects.filter(project=project).count() == audited.count()


def test_the_admin_adds_a_policy_version_and_releases_through_the_service(project, world, reviewer, ml_engineer):
    client = Client()
    client.force_login(reviewer)
    added = client.post(
        "/admin/evaluation/gatepolicy/add/",
        {"project": project.pk, "min_win_rate_lower": "0.55", "blocking_flags": ["reward_hacking"], "note": "admin"},
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    policy = GatePolicy.objects.get(project=project)
    assert policy.version == 1 and policy.blocking_flags == ["reward_hacking"] and policy.created_by == reviewer
    bad = client.post("/admin/evaluation/gatepolicy/add/", {"project": project.pk, "min_win_rate_lower": "2"})
    assert bad.status_code == 200 and GatePolicy.objects.count() == 1
    assert client.post(f"/admin/evaluation/gatepolicy/{policy.pk}/change/", {"note": "x"}).status_code == 403
    eb = _pinned(world, share=0.7, policy=policy)
    decision_id = _decide(_client(reviewer), eb).json()["id"]
    engineer = Client()
    engineer.force_login(ml_engineer)
    engineer.post(
        "/admin/evaluation/gatedecision/", {"action": "release_checkpoint", "_selected_action": [decision_id]}
    )
    assert not Release.objects.exists()
    response = client.post(
        "/admin/evaluation/gatedecision/",
        {"action": "release_checkpoint", "_selected_action": [decision_id]},
        follow=True,
    )
    assert "released" in response.content.decode()
    assert Release.objects.get().decision_id == decision_id


@pytest.mark.django_db(transaction=True)
def test_committed_audit_rows_stay_refused_and_a_transactional_test_still_cleans_up(project, reviewer):
    """Rows committed for real (as a worker sees them): the database still refuses to change them; the flush after
    the test succeeds only because conftest's fixture lifts the SQLite guard (without it the teardown errors)."""
    gate_policy_create(project=project, values={"min_judgments": 1}, created_by=reviewer)
    with pytest.raises(DatabaseError, match="append-only"), connection.cursor() as cursor:
        cursor.execute("DELETE FROM evaluation_auditevent")
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("UPDATE evaluation_audit_guard SET locked = 0")
        gate_policy_create(project=project, values={"min_judgments": 2}, created_by=reviewer)  # locks it again
        with pytest.raises(DatabaseError, match="append-only"), connection.cursor() as cursor:
            cursor.execute("DELETE FROM evaluation_auditevent")
    assert AuditEvent.objects.filter(project=project).count() >= 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_policies_and_releases_keep_versions_and_one_current_release(project, reviewer):
    """Four policy versions written at once are 1-4; three approved decisions released at once make three releases,
    exactly one of them current (the project row is locked while a release supersedes)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    from tests.annotation.test_concurrency import require_postgres

    require_postgres()
    barrier = threading.Barrier(4)

    def write(n: int) -> int:
        try:
            barrier.wait()
            return gate_policy_create(project=project, values={"min_judgments": n + 1}, created_by=reviewer).version
        finally:
            connections.close_all()

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(write, range(4))) == [1, 2, 3, 4]
    policy = GatePolicy.objects.get(project=project, version=4)
    world = make_world(project, prompts=6)
    base = add_player(world, step=None)
    decisions = []
    for step in (100, 200, 300):
        eb = add_evaluation_batch(world, candidate=add_player(world, step=step), baseline=base, annotators=1)
        decisions.append(
            GateDecision.objects.create(
                project=project,
                evaluation_batch=eb,
                checkpoint=world.players[-1].checkpoint,
                policy=policy,
                verdict="approve",
                note="ok",
                reviewer=reviewer,
            )
        )
    from evaluation.services.gate import release

    barrier3 = threading.Barrier(3)

    def ship(decision) -> int:
        try:
            barrier3.wait()
            return release(decision=decision, released_by=reviewer).pk
        finally:
            connections.close_all()

    with ThreadPoolExecutor(3) as pool:
        made = list(pool.map(ship, decisions))
    assert len(set(made)) == 3
    assert Release.objects.filter(project=project, superseded_at__isnull=True).count() == 1
    assert Release.objects.filter(project=project, superseded_at__isnull=False).count() == 2
    assert _kinds(project).count("superseded") == 2
