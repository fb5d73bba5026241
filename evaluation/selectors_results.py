"""Reads for evaluation results: one evaluation batch's win rates, and a project's checkpoint leaderboard.

Queries turn rows into per-judgment NumPy arrays from the candidate's side; the statistics themselves are
evaluation.metrics' (pure functions). Conventions, also in docs/EVALUATION.md ("Results"):

- Judgments counted: regular items only (not gold, not withdrawn), of the evaluation batch's EvaluationItems.
- A vote scores 1 for the candidate, 0 for the baseline, ½ for a tie and ½ for both-bad (counted apart as the
  both-bad rate). Criteria dimensions (canonical a/b/tie) score the same way, per dimension key.
- Red-team failure: on prompts of stratum "red_team", a judgment fails the candidate when it is both-bad, or when
  its `disqualified` dimension (a criteria dimension with that key, answered a/b like the others) names the
  candidate's side. That dimension is left out of the per-dimension win rates.
- Clusters are EvalPrompt ids: the same prompt in several batches is one cluster of the bootstrap.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from django.core.cache import cache
from django.db.models import Count, Max

from annotation.models import Batch, Item, Judgment, JudgmentRevision, Project
from evaluation import metrics
from evaluation.models import EvalPrompt, EvaluationBatch, EvaluationSettings, LeaderboardSnapshot, Sampled
from trainer.models import Checkpoint, Generation

logger = logging.getLogger(__name__)

RED_TEAM = "red_team"
DISQUALIFIED = "disqualified"  # the dimension key naming the side that hit a disqualifier
BASE_PREFIX = "base:"
CACHE_SECONDS = 24 * 3600


def evaluation_settings_for(*, project: Project | int) -> dict:
    """The project's thresholds and resamples (the model's defaults when it has no row)."""
    project_id = project if isinstance(project, int) else project.pk
    row = EvaluationSettings.objects.filter(project_id=project_id).first() or EvaluationSettings()
    return {
        "diminishing_returns": row.diminishing_returns,
        "reward_length_spearman": row.reward_length_spearman,
        "length_control_gap": row.length_control_gap,
        "bootstrap_resamples": row.bootstrap_resamples,
    }


def _thresholds(settings: dict) -> dict:
    return {key: settings[key] for key in metrics.DEFAULT_THRESHOLDS}


def _score(choice: str, candidate_is_a: bool) -> float:
    if choice in ("a", "b"):
        return 1.0 if (choice == "a") == candidate_is_a else 0.0
    return 0.5  # tie, both_bad


def _table(estimates: dict, key: str) -> list[dict]:
    return [{key: name, **estimate.as_dict()} for name, estimate in estimates.items()]


# --- one evaluation batch --------------------------------------------------------------------------------------


def _batch_judgments(*, batch_ids: list[int], with_dimensions: bool) -> list[tuple]:
    """(evaluation batch id, choice, candidate_is_a, prompt id, candidate tokens, baseline tokens[, dimensions]) per
    regular judgment of the given annotation batches: one query (judgment ⋈ item ⋈ evaluation item)."""
    fields = [
        "item__evaluation__evaluation_batch_id",
        "choice",
        "item__evaluation__candidate_is_a",
        "item__evaluation__prompt_id",
        "item__evaluation__candidate_tokens",
        "item__evaluation__baseline_tokens",
    ]
    if with_dimensions:
        fields.append("dimensions")
    return list(
        Judgment.objects.filter(
            batch_id__in=batch_ids,
            is_gold=False,
            item__gold="",
            item__withdrawn_at__isnull=True,
            item__evaluation__isnull=False,
        )
        .order_by()
        .values_list(*fields)
    )


def _prompt_groups(*, eval_set_ids) -> dict[int, tuple[str, str]]:
    rows = (
        EvalPrompt.objects.filter(eval_set_id__in=list(eval_set_ids))
        .order_by()
        .values_list("id", "stratum", "category")
    )
    return {pk: (stratum or "", category or "") for pk, stratum, category in rows}


def _results_of(rows: list[tuple], *, prompts: dict[int, tuple[str, str]], resamples: int, seed: int = 0) -> dict:
    """The tables of one evaluation batch from its judgment rows (with dimensions)."""
    n = len(rows)
    choice = np.array([r[1] for r in rows], dtype=object)
    candidate_is_a = np.array([bool(r[2]) for r in rows], dtype=bool)
    cluster = np.array([r[3] for r in rows], dtype=np.int64)
    length_diff = np.array([int(r[4]) - int(r[5]) for r in rows], dtype=float)
    score = np.array([_score(c, a) for c, a in zip(choice, candidate_is_a, strict=True)], dtype=float)
    both_bad = (choice == "both_bad").astype(float) if n else np.zeros(0)
    stratum = np.array([prompts.get(int(c), ("", ""))[0] or "(none)" for c in cluster], dtype=object)
    category = np.array([prompts.get(int(c), ("", ""))[1] or "(none)" for c in cluster], dtype=object)
    kw = {"resamples": resamples, "seed": seed}

    # Per dimension: one entry per (judgment, dimension answered), the disqualifier dimension apart.
    dim_key, dim_score, dim_cluster = [], [], []
    candidate_side = np.where(candidate_is_a, "a", "b")
    disqualified = np.zeros(n, dtype=bool)
    for i, row in enumerate(rows):
        for key, answer in (row[6] or {}).items():
            if key == DISQUALIFIED:
                disqualified[i] = answer == candidate_side[i]
                continue
            if answer in ("a", "b", "tie"):
                dim_key.append(key)
                dim_score.append(_score(answer, bool(candidate_is_a[i])))
                dim_cluster.append(cluster[i])
    red = stratum == RED_TEAM
    failure = ((choice == "both_bad") | disqualified)[red].astype(float) if n else np.zeros(0)

    overall = metrics.win_rate(score, cluster, **kw)
    lc = metrics.length_controlled_win_rate(score, length_diff, cluster, **kw)
    strata = metrics.win_rates_by(stratum, score, cluster, **kw)
    return {
        "win_rate": overall.as_dict(),
        "length_controlled_win_rate": {
            **lc.as_dict(),
            "raw": lc.raw,
            "intercept": lc.intercept,
            "slope": lc.slope,
            "scale": lc.scale,
        },
        "both_bad_rate": metrics.rate(both_bad, cluster, **kw).as_dict(),
        "red_team_failure_rate": metrics.rate(failure, cluster[red], **kw).as_dict(),
        "strata": _table(strata, "stratum"),
        "categories": _table(metrics.win_rates_by(category, score, cluster, **kw), "category"),
        "dimensions": _table(
            metrics.win_rates_by(np.array(dim_key, dtype=object), np.array(dim_score), np.array(dim_cluster), **kw),
            "dimension",
        ),
        "counts": {
            "judgments": n,
            "prompts": len(set(cluster.tolist())),
            "candidate_wins": int((score == 1).sum()),
            "baseline_wins": int((score == 0).sum()),
            "ties": int((choice == "tie").sum()) if n else 0,
            "both_bad": int((choice == "both_bad").sum()) if n else 0,
            "red_team_judgments": int(red.sum()),
            "mean_length_difference": float(length_diff.mean()) if n else None,
        },
        "_estimates": {"win_rate": overall, "lc": lc, "strata": strata},
    }


def _sampled_row(sampled: Sampled) -> dict:
    return {"id": sampled.pk, "run_id": sampled.run_id, "model_key": sampled.model_key, "label": sampled.label}


def evaluation_batch_results(*, evaluation_batch: EvaluationBatch, resamples: int | None = None) -> dict:
    """The candidate's results on one evaluation batch: win rate with a 95 % interval (bootstrap clustered by
    prompt), both-bad rate, per stratum, category and criteria dimension, the red-team failure rate, the
    length-controlled win rate beside the raw one, counts, and the flags that one comparison can raise."""
    eb = evaluation_batch
    settings = evaluation_settings_for(project=eb.batch.project_id)
    resamples = settings["bootstrap_resamples"] if resamples is None else resamples
    rows = _batch_judgments(batch_ids=[eb.batch_id], with_dimensions=True)
    rows = [r for r in rows if r[0] == eb.pk]
    results = _results_of(rows, prompts=_prompt_groups(eval_set_ids=[eb.eval_set_id]), resamples=resamples)
    estimates = results.pop("_estimates")
    candidate, baseline = eb.candidate, eb.baseline
    flags = metrics.flags(
        [
            {"key": baseline.model_key, "label": baseline.label},
            {
                "key": candidate.model_key,
                "label": candidate.label,
                "lc": estimates["lc"],
                "strata": estimates["strata"],
            },
        ],
        _thresholds(settings),
    )
    # Gains and reward rules need the whole leaderboard; one batch raises only what it alone shows.
    flags = [f for f in flags if f["code"] == "stratum_regression" or f.get("rule") == "length_controlled_gap"]
    return {
        "evaluation_batch_id": eb.pk,
        "batch_id": eb.batch_id,
        "batch": eb.batch.name,
        "project_id": eb.batch.project_id,
        "eval_set": {"id": eb.eval_set_id, "name": eb.eval_set.name, "version": eb.eval_set.version},
        "candidate": _sampled_row(candidate),
        "baseline": _sampled_row(baseline),
        "resamples": resamples,
        **results,
        "flags": _json_safe(flags),
    }


def evaluation_batch_for(*, evaluation_batch_id: int) -> EvaluationBatch | None:
    return (
        EvaluationBatch.objects.select_related("batch", "eval_set", "candidate", "baseline")
        .filter(pk=evaluation_batch_id)
        .first()
    )


# --- the project's leaderboard -----------------------------------------------------------------------------------


@dataclass
class _Player:
    key: str
    label: str = ""
    checkpoint_id: int | None = None
    training_run_id: int | None = None
    step: int | None = None
    generation_run_ids: list[int] = field(default_factory=list)
    mean_rewards: list[float] = field(default_factory=list)
    first_seen: int = 0

    @property
    def is_base(self) -> bool:
        return self.key.startswith(BASE_PREFIX)

    def order(self) -> tuple:
        if self.is_base:
            return (0, 0, 0, self.first_seen)
        return (1, self.step if self.step is not None else 10**12, self.training_run_id or 0, self.first_seen)


def _players(batches: list[dict], sampled: dict[int, dict]) -> dict[str, _Player]:
    players: dict[str, _Player] = {}
    for position, eb in enumerate(batches):
        for sampled_id in (eb["baseline_id"], eb["candidate_id"]):
            s = sampled[sampled_id]
            player = players.setdefault(s["model_key"], _Player(key=s["model_key"], first_seen=position))
            player.label = player.label or s["label"]
            if s["run_id"] not in player.generation_run_ids:
                player.generation_run_ids.append(s["run_id"])
                reward = (s["run__evaluation"] or {}).get("mean_reward")
                if isinstance(reward, int | float):
                    player.mean_rewards.append(float(reward))
            if s["run__sampled_checkpoint_id"] and player.checkpoint_id is None:
                player.checkpoint_id = s["run__sampled_checkpoint_id"]
    # Checkpoints named by the key when the generate run does not say (one query).
    wanted = {
        p.key: int(p.key.split(":", 1)[1])
        for p in players.values()
        if p.checkpoint_id is None and p.key.startswith("checkpoint:") and p.key.split(":", 1)[1].isdigit()
    }
    for p in players.values():
        if p.key in wanted:
            p.checkpoint_id = wanted[p.key]
    ids = {p.checkpoint_id for p in players.values() if p.checkpoint_id}
    steps = {
        pk: (run_id, step)
        for pk, run_id, step in Checkpoint.objects.filter(pk__in=ids).values_list("pk", "run_id", "step")
    }
    for p in players.values():
        if p.checkpoint_id in steps:
            p.training_run_id, p.step = steps[p.checkpoint_id]
    return dict(sorted(players.items(), key=lambda kv: kv[1].order()))


def _generation_stats(run_ids: list[int]) -> dict[int, tuple[list, list]]:
    """Per generate run: its responses' rewards and token counts (one query)."""
    stats: dict[int, tuple[list, list]] = defaultdict(lambda: ([], []))
    for run_id, reward, tokens in (
        Generation.objects.filter(run_id__in=run_ids).order_by().values_list("run_id", "reward", "token_count")
    ):
        stats[run_id][0].append(np.nan if reward is None else reward)
        stats[run_id][1].append(tokens)
    return stats


def _none_if_nan(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if np.isnan(value) or np.isinf(value) else value


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, metrics.Estimate):
        return value.as_dict()
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, float):
        return _none_if_nan(value)
    return value


@dataclass(frozen=True)
class LeaderboardState:
    """What a leaderboard is computed from, and its change key (see leaderboard_state)."""

    key: str
    resamples: int
    settings: dict
    batches: list[dict]


def leaderboard_state(*, project: Project, resamples: int | None = None) -> LeaderboardState:
    """The project's evaluation batches and settings, and a key that changes whenever a judgment is added or
    revised, an item withdrawn, an evaluation batch added or closed, or a setting changed: a leaderboard computed
    under one key is current while the key stays the same. Five queries, none reading the judgments themselves: the
    settings, the batches, and three aggregates over indexes (a count and the last id from
    judgment_batch_annotator; revisions, which write a JudgmentRevision row each; the few withdrawn items from
    item_withdrawn). The batches' creation times are in the key as well as their ids, so that ids a test database
    hands out again never meet a stale entry."""
    settings = evaluation_settings_for(project=project)
    resamples = settings["bootstrap_resamples"] if resamples is None else resamples
    batches = list(
        EvaluationBatch.objects.filter(batch__project_id=project.pk)
        .order_by("created_at", "pk")
        .values(
            "id", "batch_id", "batch__name", "batch__status", "eval_set_id", "candidate_id", "baseline_id", "created_at"
        )
    )
    batch_ids = [b["batch_id"] for b in batches]
    judged = Judgment.objects.filter(batch_id__in=batch_ids).aggregate(last=Max("id"), count=Count("id"))
    revised = JudgmentRevision.objects.filter(judgment__batch_id__in=batch_ids).aggregate(
        last=Max("id"), count=Count("id")
    )
    withdrawn = Item.objects.filter(batch_id__in=batch_ids, withdrawn_at__isnull=False).aggregate(
        last=Max("withdrawn_at"), count=Count("id")
    )
    parts = [
        project.pk,
        resamples,
        max(batch_ids, default=0),
        len(batch_ids),
        max((b["created_at"].timestamp() for b in batches), default=0),
        sum(1 for b in batches if b["batch__status"] == Batch.Status.CLOSED),  # the page shows each batch's status
        judged["last"],
        judged["count"],
        revised["last"],
        revised["count"],
        withdrawn["last"].timestamp() if withdrawn["last"] else 0,
        withdrawn["count"],
        *(settings[k] for k in sorted(settings)),
    ]
    key = "evaluation:leaderboard:v3:" + ":".join(str(p) for p in parts)
    return LeaderboardState(key=key, resamples=resamples, settings=settings, batches=batches)


def leaderboard_compute(*, project: Project, state: LeaderboardState) -> dict:
    """The leaderboard of `state` (leaderboard_state), computed now: what evaluation.services.leaderboards stores."""
    return _leaderboard(project=project, batches=state.batches, settings=state.settings, resamples=state.resamples)


def project_leaderboard(*, project: Project, resamples: int | None = None, use_cache: bool = True) -> dict:
    """Bradley-Terry ratings of every model compared in the project's evaluation batches (players: model_key),
    anchored at the base model, with bootstrap intervals clustered by prompt; players ordered base first then by
    checkpoint step, each with its reward-model mean, reward-length Spearman, mean length, win rate and gain over
    the one before, per-stratum win rates and flags. Computed on the call (kept in Django's cache under the
    state's key until a judgment, item, batch or setting changes). The Checkpoints page and the API read the stored
    LeaderboardSnapshot instead (latest_leaderboard); this is for scripts and other resample counts."""
    state = leaderboard_state(project=project, resamples=resamples)
    key = state.key if use_cache else None
    if key:
        try:
            cached = cache.get(key)
        except Exception:  # a cache that does not answer costs a recomputation, never the answer
            logger.warning("evaluation.leaderboard_cache_unavailable", exc_info=True)
            cached = None
        if cached is not None:
            return cached
    board = leaderboard_compute(project=project, state=state)
    if key:
        try:
            cache.set(key, board, CACHE_SECONDS)
        except Exception:
            logger.warning("evaluation.leaderboard_cache_unavailable", exc_info=True)
    return board


def latest_leaderboard(*, project_id: int) -> LeaderboardSnapshot | None:
    """The project's newest stored leaderboard (one indexed query), or None before the first refresh."""
    return LeaderboardSnapshot.objects.filter(project_id=project_id).order_by("-computed_at", "-pk").first()


@dataclass(frozen=True)
class StoredLeaderboard:
    snapshot: LeaderboardSnapshot | None  # the latest stored one
    state: LeaderboardState  # the data as it is now
    stale: bool  # no snapshot, or the data moved since it was computed

    @property
    def has_batches(self) -> bool:
        return bool(self.state.batches)


def stored_leaderboard(*, project: Project) -> StoredLeaderboard:
    """The latest stored leaderboard and whether it is still current: the state's five small queries and one
    indexed row read, no computation (what the Checkpoints page and the API answer from)."""
    state = leaderboard_state(project=project)
    snapshot = latest_leaderboard(project_id=project.pk)
    return StoredLeaderboard(snapshot=snapshot, state=state, stale=snapshot is None or snapshot.key != state.key)


def projects_with_evaluation_batches() -> list[int]:
    return list(EvaluationBatch.objects.order_by().values_list("batch__project_id", flat=True).distinct())


def _per_value(values: np.ndarray, of, *, dtype) -> np.ndarray:
    """of(value) for each element, computed once per distinct value (no Python loop over 200,000 judgments)."""
    if not values.size:
        return np.zeros(0, dtype=dtype)
    distinct, inverse = np.unique(values, return_inverse=True)
    return np.array([of(int(v)) for v in distinct], dtype=dtype)[inverse.reshape(-1)]


def _leaderboard(*, project: Project, batches: list[dict], settings: dict, resamples: int) -> dict:
    sampled_ids = {b["candidate_id"] for b in batches} | {b["baseline_id"] for b in batches}
    sampled = {
        s["id"]: s
        for s in Sampled.objects.filter(pk__in=sampled_ids).values(
            "id", "run_id", "model_key", "label", "eval_set_id", "run__evaluation", "run__sampled_checkpoint_id"
        )
    }
    players = _players(batches, sampled)
    keys = list(players)
    index = {k: i for i, k in enumerate(keys)}
    anchor_key = next(
        (
            sampled[b["baseline_id"]]["model_key"]
            for b in batches
            if sampled[b["baseline_id"]]["model_key"].startswith(BASE_PREFIX)
        ),
        keys[0] if keys else None,
    )
    anchor = index.get(anchor_key, 0)

    by_eb = {b["id"]: b for b in batches}
    rows = _batch_judgments(batch_ids=[b["batch_id"] for b in batches], with_dimensions=False)
    prompts = _prompt_groups(eval_set_ids={b["eval_set_id"] for b in batches})
    n = len(rows)
    columns = list(zip(*rows, strict=True)) if n else [()] * 6
    eb_of = np.array(columns[0], dtype=np.int64)
    choice = np.array(columns[1], dtype=object)
    cand_a = np.array(columns[2], dtype=bool)
    cluster = np.array(columns[3], dtype=np.int64)
    length_diff = np.array(columns[4], dtype=float) - np.array(columns[5], dtype=float)
    score = np.where(choice == "a", cand_a.astype(float), np.where(choice == "b", (~cand_a).astype(float), 0.5))
    stratum = _per_value(cluster, lambda c: prompts.get(c, ("", ""))[0] or "(none)", dtype=object)
    cand_player = _per_value(eb_of, lambda e: index[sampled[by_eb[e]["candidate_id"]]["model_key"]], dtype=np.int64)
    base_player = _per_value(eb_of, lambda e: index[sampled[by_eb[e]["baseline_id"]]["model_key"]], dtype=np.int64)

    tie = score == 0.5
    winner = np.where(score == 0, base_player, cand_player)
    loser = np.where(score == 0, cand_player, base_player)
    ratings = (
        metrics.bradley_terry_bootstrap(winner, loser, tie, cluster, len(keys), anchor=anchor, resamples=resamples)
        if keys
        else None
    )
    rating_rows = ratings.rows(labels=[players[k].label for k in keys]) if ratings else []

    gen = _generation_stats([r for p in players.values() for r in p.generation_run_ids])
    kw = {"resamples": resamples}

    batch_rows = []
    for b in batches:
        mask = eb_of == b["id"]
        cand, base = sampled[b["candidate_id"]], sampled[b["baseline_id"]]
        batch_rows.append(
            {
                "evaluation_batch_id": b["id"],
                "batch_id": b["batch_id"],
                "batch": b["batch__name"],
                "status": b["batch__status"],
                "candidate": cand["model_key"],
                "candidate_label": cand["label"],
                "candidate_run_id": cand["run_id"],
                "baseline": base["model_key"],
                "baseline_label": base["label"],
                "baseline_run_id": base["run_id"],
                "win_rate": metrics.win_rate(score[mask], cluster[mask], **kw),
            }
        )

    checkpoints, entries = [], []
    for position, k in enumerate(keys):
        p, i = players[k], index[k]
        previous = keys[position - 1] if position else None
        entry = {"key": k, "label": p.label, "step": p.step, "bt_theta": _none_if_nan(ratings.theta[i])}
        if previous is not None:
            entry["previous_key"] = previous
        # Against the one before: batches with this one as candidate and the previous as baseline (or the
        # other way round, the votes turned over), pooled.
        if previous is not None:
            j = index[previous]
            forward = (cand_player == i) & (base_player == j)
            backward = (cand_player == j) & (base_player == i)
            mask = forward | backward
            if mask.any():
                s = np.where(forward, score, 1 - score)[mask]
                entry["win_rate_vs_previous"] = metrics.win_rate(s, cluster[mask], **kw)
                entry["lc"] = metrics.length_controlled_win_rate(
                    s, np.where(forward, length_diff, -length_diff)[mask], cluster[mask], **kw
                )
                entry["strata"] = metrics.win_rates_by(stratum[mask], s, cluster[mask], **kw)
        if "strata" not in entry and (cand_player == i).any():
            mask = cand_player == i  # no direct comparison with the one before: all its batches as candidate
            entry["lc"] = metrics.length_controlled_win_rate(score[mask], length_diff[mask], cluster[mask], **kw)
            entry["strata"] = metrics.win_rates_by(stratum[mask], score[mask], cluster[mask], **kw)
        rewards = np.array([x for r in p.generation_run_ids for x in gen[r][0]], dtype=float)
        lengths = np.array([x for r in p.generation_run_ids for x in gen[r][1]], dtype=float)
        if p.mean_rewards:
            entry["reward_mean"] = float(np.mean(p.mean_rewards))
        elif rewards.size and not np.isnan(rewards).all():
            entry["reward_mean"] = float(np.nanmean(rewards))
        scored = ~np.isnan(rewards)
        entry["reward_length_spearman"] = metrics.spearman(rewards[scored], lengths[scored]) if scored.any() else None
        entries.append(entry)
        row = rating_rows[i] if rating_rows else {}
        vs_prev = entry.get("win_rate_vs_previous")
        if vs_prev is not None and vs_prev.value is not None:
            gain, gain_source = vs_prev.value - 0.5, "evaluation"
        elif previous is not None and entry["bt_theta"] is not None and entries[-2]["bt_theta"] is not None:
            gain = metrics.win_probability(entry["bt_theta"], entries[-2]["bt_theta"]) - 0.5
            gain_source = "bradley_terry"
        else:
            gain, gain_source = None, None
        checkpoints.append(
            {
                "key": k,
                "label": p.label,
                "is_base": p.is_base,
                "is_anchor": i == anchor,
                "checkpoint_id": p.checkpoint_id,
                "training_run_id": p.training_run_id,  # the policy run the checkpoint belongs to
                "step": p.step,
                "run": p.generation_run_ids[0],  # the generate run that sampled it (the first, if several)
                "generation_run_ids": p.generation_run_ids,
                # Bradley-Terry log-strength (anchor 0) and its bootstrap interval; the same on the Elo scale.
                "rating": row.get("theta"),
                "rating_low": row.get("low"),
                "rating_high": row.get("high"),
                **{key: row.get(key) for key in ("elo", "elo_low", "elo_high", "comparisons", "rated")},
                "win_rate_vs_anchor": _vs_anchor(row),
                "previous": previous,
                "win_rate_vs_previous": vs_prev,
                "gain": gain,
                "gain_source": gain_source,
                "length_controlled": _lc_dict(entry.get("lc")),
                "strata": {name: e.as_dict() for name, e in (entry.get("strata") or {}).items()},
                "reward_mean": entry.get("reward_mean"),
                "reward_length_spearman": entry["reward_length_spearman"],
                "mean_length": float(lengths.mean()) if lengths.size else None,
                "generations": int(lengths.size),
            }
        )
    flag_list = metrics.flags(entries, _thresholds(settings)) if entries else []
    for c in checkpoints:
        c["flags"] = [f for f in flag_list if f.get("key") == c["key"]]
    strata = sorted({name for c in checkpoints for name in c["strata"]})
    return _json_safe(
        {
            "project_id": project.pk,
            "project": project.name,
            "resamples": resamples,
            "thresholds": _thresholds(settings),
            "anchor": {
                "key": anchor_key,
                "label": players[anchor_key].label if anchor_key else None,
                "run": players[anchor_key].generation_run_ids[0] if anchor_key else None,
            },
            "anchor_rule": "the earliest evaluation batch's baseline named base:<folder>; else the first player",
            "note": ratings.note if ratings else None,
            "players": checkpoints,
            "strata": strata,
            "batches": batch_rows,
            "flags": flag_list,
            "counts": {
                "judgments": n,
                "prompts": len(set(cluster.tolist())),
                "batches": len(batches),
                "players": len(keys),
            },
        }
    )


def _vs_anchor(row: dict) -> dict:
    """The Bradley-Terry probability of beating the anchor, with the bounds of the rating's interval."""
    theta = row.get("theta")
    if theta is None:
        return {"value": None, "low": None, "high": None}
    sig = lambda x: None if x is None else float(1 / (1 + np.exp(-x)))  # noqa: E731
    return {"value": sig(theta), "low": sig(row.get("low")), "high": sig(row.get("high"))}


def _lc_dict(lc) -> dict | None:
    if lc is None:
        return None
    return {**lc.as_dict(), "raw": lc.raw, "intercept": lc.intercept, "slope": lc.slope}
