"""The Checkpoints page (a project's leaderboard, win rate by step, strata, flags) and generations side by side.

Leads and ML engineers (Action.VIEW_EVALUATION); annotators get a 403, non-members a 404. The page never computes
the leaderboard: it reads the latest stored one (evaluation.services.leaderboards, refreshed by a worker), says when
it was computed, and asks for a refresh through the task outbox when it finds none or a stale one. The chart is an
SVG drawn here, no script.
"""

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from core.authz import Action, project_for
from evaluation.selectors import eval_set_prompts, generation_runs_for
from evaluation.selectors_results import stored_leaderboard
from evaluation.services.leaderboards import leaderboard_refresh_enqueue
from trainer.selectors import generations_by_prompt

PROMPTS_PER_PAGE = 20

# What each flag means, in words on the page (the flag's own reason gives its numbers).
FLAG_MEANINGS = {
    "diminishing_returns": "The checkpoint's win-rate gain over the one before is under the project's threshold: "
    "another round of training on the same recipe is unlikely to pay; consider stopping here.",
    "reward_hacking": "The policy may be optimising the reward model rather than what people prefer: the reward "
    "model's score rose while the human win rate did not, or reward tracks response length, or the win rate "
    "falls well below the raw one once length is controlled.",
    "stratum_regression": "On one stratum of prompts the checkpoint loses to its baseline: the upper bound of that "
    "stratum's win-rate interval is under 50 %.",
}
RULE_WORDS = {
    "reward_up_win_rate_flat": "reward up, win rate flat",
    "length_correlation": "reward tracks length",
    "length_controlled_gap": "length-controlled win rate far under the raw one",
}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _interval(estimate: dict | None) -> str:
    if not estimate or estimate.get("low") is None or estimate.get("high") is None:
        return ""
    return f"{100 * estimate['low']:.1f}–{100 * estimate['high']:.1f} %"


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    band: str  # polygon points
    line: str  # polyline points
    points: list[dict]
    y_ticks: list[dict]
    x_ticks: list[dict]
    half_y: float
    threshold_y: float
    left: int
    right: int
    top: int
    bottom: int


def _vs_previous_point(p: dict) -> tuple[float, float, float, bool] | None:
    """(value, low, high, measured): the win rate against the model before, measured by a batch comparing the two
    (with its interval), else implied by the ratings (gain + 50 %, no interval)."""
    est = p["win_rate_vs_previous"]
    if est and est.get("value") is not None:
        low, high = est.get("low"), est.get("high")
        value = est["value"]
        return value, value if low is None else low, value if high is None else high, True
    if p["gain"] is not None:
        value = p["gain"] + 0.5
        return value, value, value, False
    return None


def win_rate_chart(players: list[dict], threshold: float, *, width: int = 720, height: int = 260) -> Chart | None:
    """Each checkpoint's win rate against the one before it, by step, its 95 % interval as a band; the dashed lines
    mark 50 % (no gain) and 50 % + the diminishing-returns threshold."""
    shown = []
    for p in players:
        point = _vs_previous_point(p) if p["step"] is not None and not p["is_base"] else None
        if point is not None:
            shown.append((p, point))
    if not shown:
        return None
    left, right, top, bottom = 56, width - 16, 12, height - 36
    steps = [p["step"] for p, _ in shown]
    lo_step, hi_step = min(steps), max(steps)
    span = (hi_step - lo_step) or 1

    def x(step: float) -> float:
        return round(left + (right - left) * (step - lo_step) / span, 1)

    def y(value: float) -> float:
        return round(bottom - (bottom - top) * min(max(value, 0.0), 1.0), 1)

    pts, lows, highs = [], [], []
    for p, (value, low, high, measured) in shown:
        how = f"95 % interval {_pct(low)}–{_pct(high)}" if measured else "from the ratings: no batch compares them"
        pts.append(
            {
                "x": x(p["step"]),
                "y": y(value),
                "measured": measured,
                "title": f"{p['label']} vs {p['previous_label']}: {_pct(value)} ({how})",
            }
        )
        lows.append(f"{x(p['step'])},{y(low)}")
        highs.append(f"{x(p['step'])},{y(high)}")
    ticks = sorted(set(steps))
    if len(ticks) > 10:
        ticks = ticks[:: -(-len(ticks) // 10)]
    return Chart(
        width=width,
        height=height,
        band=" ".join(highs + lows[::-1]),
        line=" ".join(f"{p['x']},{p['y']}" for p in pts),
        points=pts,
        y_ticks=[{"y": y(v), "text": f"{int(100 * v)} %"} for v in (0, 0.25, 0.5, 0.75, 1)],
        x_ticks=[{"x": x(s), "text": str(s)} for s in ticks],
        half_y=y(0.5),
        threshold_y=y(0.5 + threshold),
        left=left,
        right=right,
        top=top,
        bottom=bottom,
    )


def _flag_rows(flags: list[dict]) -> list[dict]:
    return [
        {
            "code": f["code"],
            "words": f["code"].replace("_", " ")
            + (f" ({RULE_WORDS.get(f['rule'], f['rule'])})" if f.get("rule") else ""),
            "reason": f.get("reason", ""),
            "label": f.get("label", ""),
        }
        for f in flags
    ]


def _player_rows(board: dict) -> list[dict]:
    rows = []
    for p in board["players"]:
        vs_prev = p["win_rate_vs_previous"]
        lc = p["length_controlled"] or {}
        rows.append(
            {
                **p,
                "theta": "—" if p["rating"] is None else f"{p['rating']:+.3f}",
                "theta_interval": ""
                if p["rating_low"] is None
                else f"{p['rating_low']:+.3f} … {p['rating_high']:+.3f}",
                "elo_text": "—" if p["elo"] is None else f"{p['elo']:+.0f}",
                "vs_anchor": _pct(p["win_rate_vs_anchor"]["value"]),
                "vs_previous": _pct(vs_prev["value"]) if vs_prev else "—",
                "vs_previous_interval": _interval(vs_prev),
                "gain_text": "—" if p["gain"] is None else f"{100 * p['gain']:+.1f} pts",
                "lc_text": _pct(lc.get("value")) if lc else "—",
                "reward_text": "—" if p["reward_mean"] is None else f"{p['reward_mean']:.3f}",
                "spearman_text": "—" if p["reward_length_spearman"] is None else f"{p['reward_length_spearman']:.2f}",
                "length_text": "—" if p["mean_length"] is None else f"{p['mean_length']:.0f}",
                "strata_cells": [
                    {
                        "value": _pct((p["strata"].get(s) or {}).get("value")),
                        "interval": _interval(p["strata"].get(s)),
                        "low_bound": ((p["strata"].get(s) or {}).get("high") or 1) < 0.5,
                    }
                    for s in board["strata"]
                ],
                "flag_rows": _flag_rows(p["flags"]),
                "run_url": reverse("frontend:run", args=[p["training_run_id"]]) if p["training_run_id"] else None,
            }
        )
    return rows


def _with_previous_labels(players: list[dict]) -> list[dict]:
    labels = {p["key"]: p["label"] for p in players}
    return [{**p, "previous_label": labels.get(p["previous"], "")} for p in players]


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


@login_required
def checkpoints_view(request, project_id: int):
    project = project_for(user=request.user, action=Action.VIEW_EVALUATION, project_id=project_id, what="see this page")
    stored = stored_leaderboard(project=project)
    context = {
        "project": project,
        "board": None,
        "has_batches": stored.has_batches,
        "stale": stored.stale,
        "api_url": reverse("evaluation:project-leaderboard", args=[project.pk]),
        "generations_url": reverse("frontend:generations", args=[project.pk]),
    }
    if stored.has_batches and stored.stale:
        # A worker computes it (a few seconds at 200,000 judgments); asked once per refresh interval at most.
        leaderboard_refresh_enqueue(project_id=project.pk)
    if not stored.has_batches or stored.snapshot is None:
        return render(request, "frontend/checkpoints/checkpoints.html", context)
    snapshot = stored.snapshot
    board = snapshot.data
    batches = [
        {
            **b,
            "win_rate_text": _pct(b["win_rate"]["value"]),
            "interval": _interval(b["win_rate"]),
            "n": b["win_rate"]["n"],
            "results_url": reverse("evaluation:evaluation-batch-results", args=[b["evaluation_batch_id"]]),
            "generations_url": f"{context['generations_url']}?a={b['candidate_run_id']}&b={b['baseline_run_id']}",
        }
        for b in board["batches"]
    ]
    present = {f["code"] for f in board["flags"]}
    context |= {
        "board": board,
        "computed_at": snapshot.computed_at,
        "computed_ago": _ago((timezone.now() - snapshot.computed_at).total_seconds()),
        "compute_seconds": f"{snapshot.seconds:.1f}",
        "players": _player_rows(board),
        "batches": batches,
        "chart": win_rate_chart(_with_previous_labels(board["players"]), board["thresholds"]["diminishing_returns"]),
        "flag_meanings": [(code.replace("_", " "), text, code in present) for code, text in FLAG_MEANINGS.items()],
        "thresholds": {
            k: f"{100 * v:.0f} %" if k != "reward_length_spearman" else f"{v:.2f}"
            for k, v in board["thresholds"].items()
        },
    }
    return render(request, "frontend/checkpoints/checkpoints.html", context)


def _run_param(request, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isdigit() and len(value) < 19 else None


@login_required
def generations_view(request, project_id: int):
    """Two generate runs on the same evaluation set, prompt by prompt: the prompt, each run's responses with their
    lengths, rewards and finish reasons. Model output is text: the template escapes it like any other."""
    project = project_for(user=request.user, action=Action.VIEW_EVALUATION, project_id=project_id, what="see this page")
    runs = list(generation_runs_for(project=project))
    by_run = {s.run_id: s for s in runs}
    a_id, b_id = _run_param(request, "a"), _run_param(request, "b")
    context = {"project": project, "runs": runs, "a_id": a_id, "b_id": b_id, "page": None, "error": ""}
    if a_id is None or b_id is None:
        return render(request, "frontend/checkpoints/generations.html", context)
    a, b = by_run.get(a_id), by_run.get(b_id)
    if a is None or b is None:
        raise Http404("No such generation run in this project.")
    if a.eval_set_id != b.eval_set_id:
        context["error"] = f"These two runs sampled different evaluation sets ({a.eval_set} and {b.eval_set})."
        return render(request, "frontend/checkpoints/generations.html", context, status=400)
    page = Paginator(eval_set_prompts(eval_set=a.eval_set), PROMPTS_PER_PAGE).get_page(request.GET.get("page"))
    shown = list(page.object_list)
    generations = generations_by_prompt(run_ids=[a_id, b_id], prompt_ids=[p.external_id for p in shown])
    page.object_list = [
        {
            "prompt": p,
            "a": generations.get((a_id, p.external_id), []),
            "b": generations.get((b_id, p.external_id), []),
        }
        for p in shown
    ]
    context |= {"a": a, "b": b, "page": page, "query": f"a={a_id}&b={b_id}"}
    return render(request, "frontend/checkpoints/generations.html", context)
