"""`manage.py evaluation --project NAME [--json] [--store]`: the project's checkpoint leaderboard and each evaluation
batch's results (win rates with intervals, strata, length control, flags), as tables or JSON for scripts. Always
computed on the call from the data as it is now (the page and the API read the stored leaderboard); --store also
stores it as the project's latest, as a worker's refresh does."""

import json

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from evaluation.models import EvaluationBatch
from evaluation.selectors_results import evaluation_batch_results, project_leaderboard
from evaluation.services.leaderboards import leaderboard_refresh


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _ci(estimate: dict | None) -> str:
    if not estimate or estimate.get("low") is None:
        return ""
    return f"[{_pct(estimate['low'])}, {_pct(estimate['high'])}]"


def _num(value: float | None, fmt: str = "+.3f") -> str:
    return "—" if value is None else format(value, fmt)


class Command(BaseCommand):
    help = "Print a project's checkpoint leaderboard and each evaluation batch's results (--json for scripts)."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="The project's name.")
        parser.add_argument("--json", action="store_true", help="Print JSON instead of tables.")
        parser.add_argument("--resamples", type=int, default=None, help="Bootstrap resamples (the project's setting).")
        parser.add_argument(
            "--store",
            action="store_true",
            help="Also store the leaderboard as the one the Checkpoints page and the API read (not with --resamples).",
        )

    def handle(self, *args, project: str, json: bool, resamples: int | None, store: bool = False, **options):
        found = Project.objects.filter(name=project).first()
        if found is None:
            raise CommandError(f"No project named {project!r}.")
        if resamples is not None and resamples < 0:
            raise CommandError("--resamples must be 0 or more.")
        if store and resamples is not None:
            raise CommandError("--store keeps the project's own resamples: leave --resamples out.")
        if store:
            board = leaderboard_refresh(project_id=found.pk).data
        else:
            board = project_leaderboard(project=found, resamples=resamples, use_cache=False)
        batches = [
            evaluation_batch_results(evaluation_batch=eb, resamples=resamples)
            for eb in EvaluationBatch.objects.filter(batch__project=found)
            .select_related("batch", "eval_set", "candidate", "baseline")
            .order_by("created_at", "pk")
        ]
        if json:
            self.stdout.write(
                _dumps({"project": found.name, "project_id": found.pk, "leaderboard": board, "batches": batches})
            )
        else:
            self._tables(board, batches)

    def _tables(self, board: dict, batches: list[dict]) -> None:
        out = self.stdout.write
        counts = board["counts"]
        out(
            f"Project {board['project']}: {counts['players']} model(s), {counts['batches']} evaluation batch(es),"
            f" {counts['judgments']} judgments on {counts['prompts']} prompts; anchor {board['anchor']['label']}"
        )
        out(
            f"  {'model':<28} {'step':>6} {'rating':>7} {'interval':>17} {'vs prev':>8} {'gain':>7} {'reward':>7} {'rho':>5} {'len':>6}  flags"
        )
        for p in board["players"]:
            interval = "" if p["rating_low"] is None else f"[{p['rating_low']:+.2f}, {p['rating_high']:+.2f}]"
            flags = ",".join(f["code"] + (f"({f['rule']})" if f.get("rule") else "") for f in p["flags"]) or "-"
            out(
                f"  {p['label'][:28]:<28} {('base' if p['is_base'] else str(p['step'] if p['step'] is not None else '—')):>6}"
                f" {_num(p['rating'], '+.3f'):>7} {interval:>17}"
                f" {_pct((p['win_rate_vs_previous'] or {}).get('value')):>8} {_num(p['gain'], '+.3f'):>7}"
                f" {_num(p['reward_mean'], '.3f'):>7} {_num(p['reward_length_spearman'], '.2f'):>5}"
                f" {_num(p['mean_length'], '.0f'):>6}  {flags}"
            )
        for f in board["flags"]:
            out(f"  ! {f['code']}: {f.get('reason', '')}")
        for b in batches:
            out("")
            out(
                f"Evaluation batch {b['batch']} (#{b['evaluation_batch_id']}): {b['candidate']['label']} vs"
                f" {b['baseline']['label']}, {b['counts']['judgments']} judgments on {b['counts']['prompts']} prompts"
            )
            out(f"  win rate {_pct(b['win_rate']['value'])} {_ci(b['win_rate'])}")
            lc = b["length_controlled_win_rate"]
            out(f"  length-controlled {_pct(lc['value'])} {_ci(lc)} (raw {_pct(lc.get('raw'))})")
            out(
                f"  both bad {_pct(b['both_bad_rate']['value'])}  red-team failure {_pct(b['red_team_failure_rate']['value'])}"
            )
            for table, key in (("stratum", "strata"), ("category", "categories"), ("dimension", "dimensions")):
                for row in b[key]:
                    out(f"  {table} {row[table][:24]:<24} {_pct(row['value']):>7} {_ci(row)}  n={row['n']}")
            for f in b["flags"]:
                out(f"  ! {f['code']}: {f.get('reason', '')}")


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2)
