"""Evaluation data written directly (bulk_create, no worker, no annotator loop): an evaluation set, a policy run's
checkpoints, generate runs that sampled them, evaluation batches between two of them, and judgments from
simulated annotators who prefer the candidate on a given share of prompts. Shared by tests/evaluation,
tests/frontend and bench/checkpoints_page.py."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from annotation.models import AnnotationSession, Assignment, Batch, Item, Judgment, Membership, Project
from annotation.services.projects import project_current_criteria
from evaluation.models import EvalPrompt, EvalSet, EvaluationBatch, EvaluationItem, Sampled
from trainer.models import Checkpoint, Generation, Kind, Status, TrainingRun

STRATA = ("usage", "adversarial", "red_team")


@dataclass
class Player:
    key: str
    label: str
    sampled: Sampled
    checkpoint: Checkpoint | None = None


@dataclass
class EvalWorld:
    project: Project
    eval_set: EvalSet
    prompts: list[EvalPrompt]
    players: list[Player] = field(default_factory=list)
    batches: list[EvaluationBatch] = field(default_factory=list)
    policy_run: TrainingRun | None = None
    annotators: list = field(default_factory=list)


def make_eval_set(project: Project, *, prompts: int = 60, strata=STRATA, name: str = "held-out") -> tuple:
    eval_set = EvalSet.objects.create(
        project=project,
        name=name,
        version=1,
        prompt_count=prompts,
        strata={s: sum(1 for i in range(prompts) if strata[i % len(strata)] == s) for s in strata},
        sha256="0" * 64,
        path=f"evaluation/{uuid.uuid4().hex}.jsonl",
    )
    rows = EvalPrompt.objects.bulk_create(
        [
            EvalPrompt(
                eval_set=eval_set,
                external_id=f"p{i}",
                prompt=f"Evaluation prompt {i}?",
                stratum=strata[i % len(strata)],
                category=f"cat{i % 2}",
                group=hashlib.sha256(f"p{i}".encode()).hexdigest(),
            )
            for i in range(prompts)
        ]
    )
    if rows[0].pk is None:  # backends that do not return ids from bulk_create
        rows = list(eval_set.prompts.order_by("id"))
    return eval_set, rows


def _policy_run(project: Project) -> TrainingRun:
    """A DPO run row for checkpoints to belong to. It trains on a snapshot (a constraint): the snapshot of an
    few agreed pairs is enough for the rows here, nothing reads its files."""
    from rewards.models import DatasetSnapshot
    from tests.trainer.runs_fixtures import make_snapshot

    snapshot = DatasetSnapshot.objects.filter(project=project).first() or make_snapshot(project, pairs=4)
    return TrainingRun.objects.create(
        project=project,
        kind=Kind.DPO,
        status=Status.SUCCEEDED,
        config={"base_model": "tiny"},
        snapshot=snapshot,
        time_limit_seconds=60,
        step=100,
        total_steps=100,
        finished_at=timezone.now(),
    )


def add_player(
    world: EvalWorld,
    *,
    step: int | None,
    mean_reward: float | None = None,
    lengths: tuple[int, int] = (40, 60),
    rewards: list[float] | None = None,
    label: str | None = None,
) -> Player:
    """A model sampled on the set: the base model when `step` is None, else a checkpoint of the world's policy
    run at that step. Its generate run holds one generation per prompt."""
    project = world.project
    checkpoint = None
    if step is not None:
        if world.policy_run is None:
            world.policy_run = _policy_run(project)
        checkpoint = Checkpoint.objects.create(
            run=world.policy_run, step=step, folder=f"runs/{world.policy_run.pk}/checkpoints/step-{step}"
        )
    run = TrainingRun.objects.create(
        project=project,
        kind=Kind.GENERATE,
        status=Status.SUCCEEDED,
        config={"base_model": "tiny"},
        sampled_checkpoint=checkpoint,
        time_limit_seconds=60,
        finished_at=timezone.now(),
        evaluation={} if mean_reward is None else {"mean_reward": mean_reward},
    )
    key = f"checkpoint:{checkpoint.pk}" if checkpoint else "base:tiny"
    label = label or (f"run {world.policy_run.pk} step {step}" if checkpoint else "base tiny")
    sampled = Sampled.objects.create(run=run, eval_set=world.eval_set, model_key=key, label=label)
    lo, hi = lengths
    Generation.objects.bulk_create(
        [
            Generation(
                run=run,
                prompt_id=p.external_id,
                text=f"Answer of {label} to {p.external_id}.",
                token_count=lo + (i * 7) % (hi - lo + 1),
                finish_reason="stop",
                reward=None if rewards is None else rewards[i % len(rewards)],
            )
            for i, p in enumerate(world.prompts)
        ]
    )
    player = Player(key=key, label=label, sampled=sampled, checkpoint=checkpoint)
    world.players.append(player)
    return player


def annotators_for(world: EvalWorld, n: int) -> list:
    User = get_user_model()
    existing = len(world.annotators)
    if existing < n:
        tag = uuid.uuid4().hex[:6]
        users = User.objects.bulk_create([User(username=f"sim-{tag}-{k}") for k in range(n - existing)])
        if users[0].pk is None:
            users = list(User.objects.filter(username__startswith=f"sim-{tag}-").order_by("id"))
        Membership.objects.bulk_create([Membership(project=world.project, user=u, role="annotator") for u in users])
        world.annotators += users
    return world.annotators[:n]


def prefers_candidate(share: float):
    """The simulated annotators' rule: judgment number k (over the batch, in order) prefers the candidate when
    its position in a cycle of 20 falls under share x 20 — exactly `share` of the judgments when the count is a
    multiple of 20, spread over prompts and annotators."""
    cut = round(share * 20)
    return lambda k: (k * 7) % 20 < cut


def add_evaluation_batch(
    world: EvalWorld,
    *,
    candidate: Player,
    baseline: Player,
    share: float | list[float] = 0.7,
    annotators: int = 3,
    choice_of=None,
    candidate_tokens=None,
    baseline_tokens=None,
) -> EvaluationBatch:
    """One evaluation batch, one item per prompt (the candidate's side alternating), and `annotators` judgments
    per item. `share`: the candidate's share of the votes (one per stratum index when a list); `choice_of(k, i,
    candidate_is_a)` overrides the canonical choice of judgment k on prompt i."""
    project = world.project
    now = timezone.now()
    batch = Batch.objects.create(
        project=project,
        name=f"eval {candidate.label} vs {baseline.label} {uuid.uuid4().hex[:4]}",
        kind="evaluation",
        criteria_version=project_current_criteria(project=project),
        status=Batch.Status.CLOSED,
    )
    eb = EvaluationBatch.objects.create(
        batch=batch, eval_set=world.eval_set, candidate=candidate.sampled, baseline=baseline.sampled
    )
    tag = f"{batch.pk}"
    items = Item.objects.bulk_create(
        [
            Item(
                project=project,
                batch=batch,
                external_id=f"{tag}-{p.external_id}",
                dedupe_key=f"id:{tag}-{p.external_id}",
                prompt=p.prompt,
                response_a_text="A",
                response_b_text="B",
                stratum="",
                judgment_count=annotators,
            )
            for p in world.prompts
        ]
    )
    if items[0].pk is None:
        items = list(Item.objects.filter(batch=batch).order_by("id"))
    strata = sorted({p.stratum for p in world.prompts})
    EvaluationItem.objects.bulk_create(
        [
            EvaluationItem(
                item=item,
                evaluation_batch=eb,
                prompt=p,
                candidate_is_a=i % 2 == 0,
                candidate_tokens=candidate_tokens(i) if candidate_tokens else 50,
                baseline_tokens=baseline_tokens(i) if baseline_tokens else 50,
            )
            for i, (item, p) in enumerate(zip(items, world.prompts, strict=True))
        ]
    )
    users = annotators_for(world, annotators)
    sessions = {
        u.pk: AnnotationSession.objects.create(
            project=project, annotator=u, started_at=now, expires_at=now + timedelta(hours=2), max_tasks=100_000
        )
        for u in users
    }
    rules = {}
    for idx, s in enumerate(strata):
        rules[s] = prefers_candidate(share[idx] if isinstance(share, list) else share)
    assignments, votes = [], []
    k_by_stratum = dict.fromkeys(strata, 0)
    for i, (item, p) in enumerate(zip(items, world.prompts, strict=True)):
        cand_a = i % 2 == 0
        for u in users:
            k = k_by_stratum[p.stratum]
            k_by_stratum[p.stratum] += 1
            if choice_of is not None:
                choice = choice_of(k, i, cand_a)
            else:
                wins = rules[p.stratum](k)
                choice = ("a" if cand_a else "b") if wins else ("b" if cand_a else "a")
            assignments.append(
                Assignment(
                    id=uuid.uuid4(),
                    session=sessions[u.pk],
                    item=item,
                    annotator=u,
                    left_is_a=True,
                    leased_at=now,
                    lease_expires_at=now + timedelta(minutes=10),
                    judged_at=now,
                )
            )
            votes.append((item, u, choice))
    Assignment.objects.bulk_create(assignments, batch_size=2000)
    Judgment.objects.bulk_create(
        [
            Judgment(
                assignment=a,
                item=item,
                batch=batch,
                annotator=u,
                choice=choice if isinstance(choice, str) else choice[0],
                dimensions={} if isinstance(choice, str) else choice[1],
                shown_left="a",
                seconds=12.0,
            )
            for a, (item, u, choice) in zip(assignments, votes, strict=True)
        ],
        batch_size=2000,
    )
    world.batches.append(eb)
    return eb


def make_world(project: Project, *, prompts: int = 60, strata=STRATA, name: str = "held-out") -> EvalWorld:
    eval_set, rows = make_eval_set(project, prompts=prompts, strata=strata, name=name)
    return EvalWorld(project=project, eval_set=eval_set, prompts=rows)
