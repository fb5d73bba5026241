"""Evaluation batches: two generation runs' responses to one evaluation set, candidate against baseline, as an
annotation batch of kind evaluation that the annotator loop serves like any other.

Nothing an annotator can reach names a model: the items' response models stay empty, the batch name says only the set,
and which side holds the candidate is kept apart, in EvaluationItem.candidate_is_a, drawn per item from a generator
seeded by the batch id (the same batch id, the same sides). Gold items are not copied in: the assignment engine mixes
the project's gold into every session whatever batch it serves (annotation.services.assignments).
"""

import random
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import Batch, CriteriaVersion, Stratum
from annotation.services.batch_items import PreparedItem, batch_create, batch_items_add
from evaluation.errors import (
    DifferentEvalSets,
    DifferentProjects,
    EvalBatchRefused,
    GenerationsMissing,
    GenerationUnfinished,
    NotAGenerationRun,
    SameRunTwice,
)
from evaluation.models import EvalPrompt, EvalSet, EvaluationBatch, EvaluationItem, GatePolicy, Sampled
from evaluation.services.leaderboards import leaderboard_refresh_enqueue
from trainer.models import Kind, Status
from trainer.selectors import first_responses

# An evaluation stratum on the item's own scale (usage / synthetic / adversarial): red-team prompts are adversarial.
# The prompt's own stratum stays on EvalPrompt, which the results read through EvaluationItem.prompt.
ITEM_STRATUM = {
    Stratum.USAGE: Stratum.USAGE,
    Stratum.SYNTHETIC: Stratum.SYNTHETIC,
    Stratum.ADVERSARIAL: Stratum.ADVERSARIAL,
    "red_team": Stratum.ADVERSARIAL,
}
# How many missing prompt ids an error names per side (the error's `missing` extra lists up to this many too).
MISSING_NAMED = 20
NAME_MAX = 200


def sampled_for_run(*, run_id: int, project_id: int | None = None) -> Sampled:
    """The generation run (a generate run on an evaluation set) of this run id; NotAGenerationRun otherwise, also for
    a run of another project when project_id is given (another project's runs read as missing ones)."""
    sampled = Sampled.objects.select_related("run", "eval_set", "eval_set__project").filter(run_id=run_id)
    if project_id is not None:
        sampled = sampled.filter(run__project_id=project_id)
    found = sampled.first()
    if found is None:
        raise NotAGenerationRun(
            f"Run {run_id} is not a generation run on an evaluation set of this project.", run=run_id
        )
    return found


def eval_batch_make(
    *,
    candidate: Sampled,
    baseline: Sampled,
    name: str | None = None,
    created_by: AbstractBaseUser | None = None,
    criteria_version: CriteriaVersion | None = None,
) -> EvaluationBatch:
    """Makes the evaluation batch of `candidate` against `baseline`: one item per prompt of their set (sample 0 of
    each), open at once, pinned to `criteria_version` (the project's current one when None).

    Refuses (EvalBatchRefused subclasses; nothing written): the same run twice, runs of two projects, runs on two
    sets, a run that is not a succeeded generate run, a prompt of the set either run has no response to; and, from
    annotation's batch service, a name the project already uses.
    """
    _check_pair(candidate=candidate, baseline=baseline)
    eval_set = candidate.eval_set
    prompts = list(EvalPrompt.objects.filter(eval_set=eval_set).order_by("pk"))
    responses = {side.pk: first_responses(run=side.run) for side in (candidate, baseline)}
    _check_complete(prompts=prompts, responses=responses, sides=(candidate, baseline))

    with transaction.atomic():
        # One make at a time per set, so two default names cannot be drawn alike (a no-op on SQLite, which already
        # runs one writing transaction at a time).
        EvalSet.objects.select_for_update().filter(pk=eval_set.pk).first()
        batch = batch_create(
            project=eval_set.project,
            name=name.strip() if name and name.strip() else _default_name(eval_set),
            kind=Batch.Kind.EVALUATION,
            criteria_version=criteria_version,
        )
        sides = random.Random(f"tandem.evaluation_batch:{batch.pk}")  # reproducible, and not a secret
        candidate_is_a = [sides.random() < 0.5 for _ in prompts]
        prepared = []
        for prompt, cand_a in zip(prompts, candidate_is_a, strict=True):
            cand, base = responses[candidate.pk][prompt.external_id], responses[baseline.pk][prompt.external_id]
            a, b = (cand, base) if cand_a else (base, cand)
            prepared.append(
                PreparedItem(
                    key=str(prompt.pk),
                    external_id=prompt.external_id,
                    prompt=prompt.prompt if prompt.messages is None else "",
                    messages=prompt.messages,
                    response_a_text=a[0],
                    response_b_text=b[0],
                    stratum=ITEM_STRATUM.get(prompt.stratum, ""),
                    category=prompt.category,
                )
            )
        items = batch_items_add(batch=batch, items=prepared)
        evaluation = EvaluationBatch.objects.create(
            batch=batch,
            eval_set=eval_set,
            candidate=candidate,
            baseline=baseline,
            # The gate policy current now judges this batch; a later version never re-judges it.
            gate_policy=GatePolicy.objects.filter(project_id=eval_set.project_id).order_by("-version").first(),
            created_by=created_by if created_by is not None and created_by.is_authenticated else None,
        )
        EvaluationItem.objects.bulk_create(
            [
                EvaluationItem(
                    item=item,
                    evaluation_batch=evaluation,
                    prompt=prompt,
                    candidate_is_a=cand_a,
                    candidate_tokens=responses[candidate.pk][prompt.external_id][1],
                    baseline_tokens=responses[baseline.pk][prompt.external_id][1],
                )
                for item, prompt, cand_a in zip(items, prompts, candidate_is_a, strict=True)
            ],
            batch_size=1000,
        )
        leaderboard_refresh_enqueue(project_id=eval_set.project_id)  # the Checkpoints page lists the new batch
    return evaluation


def _check_pair(*, candidate: Sampled, baseline: Sampled) -> None:
    if candidate.pk == baseline.pk or candidate.run_id == baseline.run_id:
        raise SameRunTwice(
            f"Run {candidate.run_id} is both the candidate and the baseline: compare two different generation runs.",
            run=candidate.run_id,
        )
    for side, sampled in (("candidate", candidate), ("baseline", baseline)):
        run = sampled.run
        if run.kind != Kind.GENERATE:
            raise NotAGenerationRun(f"The {side}, run {run.pk}, is a {run.kind} run, not a generate run.", run=run.pk)
    projects = {candidate.run.project_id, baseline.run.project_id, candidate.eval_set.project_id}
    projects.add(baseline.eval_set.project_id)
    if len(projects) != 1:
        raise DifferentProjects(
            f"Runs {candidate.run_id} and {baseline.run_id} belong to different projects: an evaluation batch "
            "compares two generation runs of one project.",
            runs=[candidate.run_id, baseline.run_id],
        )
    if candidate.eval_set_id != baseline.eval_set_id:
        raise DifferentEvalSets(
            f"The candidate (run {candidate.run_id}) answered {candidate.eval_set} and the baseline "
            f"(run {baseline.run_id}) answered {baseline.eval_set}: both must answer the same evaluation set.",
            eval_sets=[candidate.eval_set_id, baseline.eval_set_id],
        )
    for side, sampled in (("candidate", candidate), ("baseline", baseline)):
        run = sampled.run
        if run.status != Status.SUCCEEDED:
            raise GenerationUnfinished(
                f"The {side}, generation run {run.pk}, is {run.get_status_display().lower()}: only a generation run "
                "that succeeded can be judged.",
                run=run.pk,
                status=run.status,
            )


def _check_complete(*, prompts: list[EvalPrompt], responses: dict, sides: Iterable[Sampled]) -> None:
    if not prompts:
        raise EvalBatchRefused("The evaluation set has no prompts: there is nothing to judge.")
    missing = {}
    for sampled in sides:
        absent = [p.external_id for p in prompts if p.external_id not in responses[sampled.pk]]
        if absent:
            missing[sampled.run_id] = absent
    if not missing:
        return
    parts = []
    for run_id, absent in missing.items():
        named = ", ".join(absent[:MISSING_NAMED]) + (
            f" and {len(absent) - MISSING_NAMED} more" if len(absent) > MISSING_NAMED else ""
        )
        parts.append(f"run {run_id} has no response to {len(absent)} prompt(s): {named}")
    raise GenerationsMissing(
        "Every prompt of the set needs a response from both runs; " + "; ".join(parts) + ".",
        missing={str(run_id): absent[:MISSING_NAMED] for run_id, absent in missing.items()},
    )


def _default_name(eval_set: EvalSet) -> str:
    """eval-<set>-v<version>-<n>, n counting this set's evaluation batches: it names the set, never a model."""
    n = EvaluationBatch.objects.filter(eval_set=eval_set).count() + 1
    taken = set(
        Batch.objects.filter(project_id=eval_set.project_id, name__startswith="eval-").values_list("name", flat=True)
    )
    while True:
        suffix = f"-v{eval_set.version}-{n}"
        name = f"eval-{eval_set.name[: NAME_MAX - len(suffix) - 5]}{suffix}"
        if name not in taken:
            return name
        n += 1
