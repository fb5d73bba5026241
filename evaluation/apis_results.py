"""Results API: one evaluation batch's win rates and tables, and the project's checkpoint leaderboard; JSON or CSV.

Leads and ML engineers (Action.VIEW_EVALUATION); annotators are refused (403), non-members see a 404. The leaderboard
is answered from the latest stored one (evaluation.services.leaderboards) with `computed_at` and `stale`; `?fresh=1`
refreshes it first when the data moved, `?resamples=N` computes one on request. One batch's results are computed on
request (one batch is cheap).
"""

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from core.authz import Action, check, project_for
from evaluation.selectors_results import (
    evaluation_batch_for,
    evaluation_batch_results,
    project_leaderboard,
    stored_leaderboard,
)
from evaluation.services.leaderboards import leaderboard_refresh
from rewards.apis import FORMAT_PARAMETER, TABLE_OBJECT, _LeadTableApi

MAX_RESAMPLES = 5000

RESULT_COLUMNS = ["table", "group", "value", "low", "high", "n", "clusters", "note"]
LEADERBOARD_COLUMNS = [
    "position",
    "key",
    "label",
    "run",
    "training_run_id",
    "step",
    "checkpoint_id",
    "anchor",
    "rating",
    "rating_low",
    "rating_high",
    "elo",
    "elo_low",
    "elo_high",
    "comparisons",
    "win_rate_vs_anchor",
    "win_rate_vs_previous",
    "win_rate_vs_previous_low",
    "win_rate_vs_previous_high",
    "gain",
    "gain_source",
    "length_controlled_win_rate",
    "reward_mean",
    "reward_length_spearman",
    "mean_length",
    "generations",
    "flags",
]


class ResultsQuerySerializer(serializers.Serializer):
    resamples = serializers.IntegerField(
        required=False, min_value=0, max_value=MAX_RESAMPLES, help_text="Bootstrap resamples (the project's default)."
    )


class LeaderboardQuerySerializer(ResultsQuerySerializer):
    resamples = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_RESAMPLES,
        help_text="Compute a leaderboard with this many bootstrap resamples on the request instead of reading the "
        "stored one (computed with the project's setting).",
    )
    fresh = serializers.BooleanField(
        required=False,
        default=False,
        help_text="When the data moved since the stored leaderboard, compute and store a new one first (seconds "
        "at 200,000 judgments) instead of answering the stale one.",
    )


def _query(request, serializer=ResultsQuerySerializer) -> dict:
    fields = serializer().fields
    query = serializer(data={k: v for k, v in request.query_params.items() if k in fields})
    query.is_valid(raise_exception=True)
    return query.validated_data


def _resamples(request) -> int | None:
    return _query(request).get("resamples")


def leaderboard_answer(*, project, resamples: int | None = None, fresh: bool = False) -> dict:
    """The leaderboard the API answers: computed on the call for an explicit resample count; else the latest stored
    one, computed and stored first when there is none yet or (`fresh`) when the data moved since. With
    `computed_at`, `stale` (the data moved since it was computed) and `snapshot_id` (None when not stored)."""
    if resamples is not None:
        board = project_leaderboard(project=project, resamples=resamples)
        return {**board, "computed_at": timezone.now().isoformat(), "stale": False, "snapshot_id": None}
    stored = stored_leaderboard(project=project)
    snapshot, stale = stored.snapshot, stored.stale
    if snapshot is None or (fresh and stale):
        snapshot, stale = leaderboard_refresh(project_id=project.pk), False
    return {
        **snapshot.data,
        "computed_at": snapshot.computed_at.isoformat(),
        "stale": stale,
        "snapshot_id": snapshot.pk,
    }


def _row(table: str, group: str, estimate: dict | None) -> dict:
    estimate = estimate or {}
    return {"table": table, "group": group, **{c: estimate.get(c) for c in RESULT_COLUMNS[2:]}}


def results_rows(results: dict) -> list[dict]:
    """The batch's tables as one CSV: a row per group, `table` naming the table it belongs to."""
    rows = [
        _row("overall", "win_rate", results["win_rate"]),
        _row("overall", "length_controlled_win_rate", results["length_controlled_win_rate"]),
        _row("overall", "both_bad_rate", results["both_bad_rate"]),
        _row("overall", "red_team_failure_rate", results["red_team_failure_rate"]),
    ]
    for table, key in (("stratum", "strata"), ("category", "categories"), ("dimension", "dimensions")):
        rows += [_row(table, entry[table], entry) for entry in results[key]]
    return rows


def leaderboard_rows(board: dict) -> list[dict]:
    rows = []
    for position, p in enumerate(board["players"], start=1):
        vs_prev = p["win_rate_vs_previous"] or {}
        rows.append(
            {
                "position": position,
                "key": p["key"],
                "label": p["label"],
                "run": p["run"],
                "training_run_id": p["training_run_id"],
                "step": p["step"],
                "checkpoint_id": p["checkpoint_id"],
                "anchor": p["is_anchor"],
                "rating": p["rating"],
                "rating_low": p["rating_low"],
                "rating_high": p["rating_high"],
                "elo": p["elo"],
                "elo_low": p["elo_low"],
                "elo_high": p["elo_high"],
                "comparisons": p["comparisons"],
                "win_rate_vs_anchor": p["win_rate_vs_anchor"]["value"],
                "win_rate_vs_previous": vs_prev.get("value"),
                "win_rate_vs_previous_low": vs_prev.get("low"),
                "win_rate_vs_previous_high": vs_prev.get("high"),
                "gain": p["gain"],
                "gain_source": p["gain_source"],
                "length_controlled_win_rate": (p["length_controlled"] or {}).get("value"),
                "reward_mean": p["reward_mean"],
                "reward_length_spearman": p["reward_length_spearman"],
                "mean_length": p["mean_length"],
                "generations": p["generations"],
                "flags": " ".join(f["code"] + (f":{f['rule']}" if f.get("rule") else "") for f in p["flags"]),
            }
        )
    return rows


class EvaluationBatchResultsApi(_LeadTableApi):
    """The candidate's win rate (wins + ½ ties) with a 95 % interval from a bootstrap clustered by prompt, the
    both-bad rate, per stratum, category and criteria dimension, the red-team failure rate, and the
    length-controlled win rate beside the raw one. ?format=csv: one row per group."""

    @extend_schema(parameters=[FORMAT_PARAMETER, ResultsQuerySerializer], responses=TABLE_OBJECT)
    def get(self, request, evaluation_batch_id: int):
        evaluation_batch = evaluation_batch_for(evaluation_batch_id=evaluation_batch_id)
        if evaluation_batch is None:
            raise Http404("Not found.")
        check(
            user=request.user,
            action=Action.VIEW_EVALUATION,
            project=evaluation_batch.batch.project_id,
            what="see evaluation results",
        )
        results = evaluation_batch_results(evaluation_batch=evaluation_batch, resamples=_resamples(request))
        if not self._as_csv(request):
            return Response(results)
        return self._csv(
            results_rows(results), f"evaluation-batch-{evaluation_batch.pk}-results.csv", columns=RESULT_COLUMNS
        )


class ProjectLeaderboardApi(_LeadTableApi):
    """Bradley-Terry ratings from every evaluation batch of the project, anchored at the base model (0), with
    bootstrap intervals clustered by prompt; players by checkpoint step with their gain over the one before and
    flags (diminishing returns, reward hacking, regression on a stratum). The latest stored leaderboard, with
    `computed_at` and `stale`; ?fresh=1 brings it up to date first; ?format=csv: one row per player."""

    @extend_schema(parameters=[FORMAT_PARAMETER, LeaderboardQuerySerializer], responses=TABLE_OBJECT)
    def get(self, request, project_id: int):
        project = project_for(
            user=request.user, action=Action.VIEW_EVALUATION, project_id=project_id, what="see the leaderboard"
        )
        query = _query(request, LeaderboardQuerySerializer)
        board = leaderboard_answer(project=project, resamples=query.get("resamples"), fresh=query["fresh"])
        if not self._as_csv(request):
            return Response(board)
        return self._csv(leaderboard_rows(board), f"leaderboard-project-{project.pk}.csv", columns=LEADERBOARD_COLUMNS)
