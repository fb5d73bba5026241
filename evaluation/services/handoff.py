"""The hand-off package of a release: one .tar.gz under ARTIFACTS_DIR/releases/<release id>/ holding the criteria, the
sampling procedure, the annotator guidelines, agreement, datasets, reward-model evaluation, runs, the evaluation
evidence, the gate decision and the checkpoint's manifest, with a generated README.md and a manifest.json of every
file's sha256 (docs/EVALUATION.md, "Hand-off package").

Memory stays flat however many judgments the lineage holds: the builder reads stored reports and aggregates (no
judgment row is loaded, except the dimension votes of a reward model's validation pairs), and files on disk are
streamed into the archive.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tarfile
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F

from annotation.models import Batch, ImportRecord, Item, Judgment
from core.files import file_sha256
from core.outbox import OutboxMessage, outbox_enqueue
from evaluation.errors import EvaluationError
from evaluation.models import EvaluationItem, GateDecision, Release
from evaluation.selectors_results import evaluation_batch_results, latest_leaderboard, project_leaderboard
from evaluation.services import handoff_render as render
from evaluation.services.held_out import lineage_runs, lineage_snapshots
from rewards.models import DatasetSnapshot
from rewards.selectors import dataset_files, latest_snapshots
from trainer.models import Kind, TrainingRun

logger = logging.getLogger(__name__)

RELEASES_DIR = "releases"
TASK = "evaluation.build_handoff"
CHUNK = 1 << 20
MAX_CATEGORIES = 1000
DIMENSION_PAIRS_LIMIT = 5000  # validation pairs scored for the per-dimension accuracy


class PackageNotBuilt(EvaluationError):
    status, code = 409, "package_not_built"


class CheckpointChanged(EvaluationError):
    """--with-weights: a checkpoint file is gone or differs from its manifest; the package is not written."""

    status, code = 409, "checkpoint_tampered"


class PackageTampered(EvaluationError):
    """The package file differs from the sha256 stored when it was built, or is gone."""

    status, code = 409, "package_tampered"


# --- writing the archive -----------------------------------------------------------------------------------------


class _Writer:
    """Adds files to the tar under one top folder and remembers each one's sha256 and size for manifest.json."""

    def __init__(self, tar: tarfile.TarFile, root: str):
        self.tar, self.root, self.entries = tar, root, {}
        self.mtime = time.time()

    def _info(self, name: str, size: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(f"{self.root}/{name}")
        info.size, info.mtime, info.mode = size, self.mtime, 0o644
        return info

    def data(self, name: str, content: bytes) -> None:
        self.entries[name] = {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
        self.tar.addfile(self._info(name, len(content)), io.BytesIO(content))

    def text(self, name: str, content: str) -> None:
        self.data(name, content.encode())

    def json(self, name: str, value) -> None:
        self.data(name, (json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n").encode())

    def file(self, name: str, path: Path) -> None:
        """A file on disk, hashed then streamed in chunks (never held whole)."""
        digest, size = hashlib.sha256(), 0
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        with open(path, "rb") as handle:
            self.tar.addfile(self._info(name, size), handle)
        self.entries[name] = {"sha256": digest.hexdigest(), "size": size}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "project"


def package_name(*, release: Release) -> str:
    return f"handoff-{_slug(release.project.name)}-checkpoint-{release.checkpoint_id}"


def package_file(*, release: Release) -> Path | None:
    return Path(settings.ARTIFACTS_DIR) / release.package_path if release.package_path else None


def handoff_build(*, release: Release, with_weights: bool = False) -> Path:
    """Write the release's package (a new file each time, moved into place whole), store its path and sha256 on the
    release, and return its path."""
    release = Release.objects.select_related("project", "checkpoint__run", "decision").get(pk=release.pk)
    facts = _collect(release=release)
    name = package_name(release=release)
    directory = Path(settings.ARTIFACTS_DIR) / RELEASES_DIR / str(release.pk)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{name}.tar.gz"
    tmp = directory / f".{name}.{uuid.uuid4().hex}.tmp"
    relative = str(final.relative_to(settings.ARTIFACTS_DIR))
    try:
        with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
            _write(_Writer(tar, name), facts, with_weights=with_weights)
        sha256 = file_sha256(tmp)
        # Two builds of one release (a redelivered message, the command) each move their file in and store its
        # digest under the row's lock, so the file left in place is the one whose digest is stored.
        with transaction.atomic():
            Release.objects.select_for_update().filter(pk=release.pk).values_list("pk").first()
            os.replace(tmp, final)
            # The gate service writes Release rows; the package's two fields are this service's, and only those.
            Release.objects.filter(pk=release.pk).update(package_path=relative, package_sha256=sha256)
    finally:
        tmp.unlink(missing_ok=True)
    release.package_path, release.package_sha256 = relative, sha256
    return final


def handoff_build_enqueue(*, release: Release) -> OutboxMessage:
    """Ask a worker to build the package, in the caller's transaction (sent after it commits)."""
    return outbox_enqueue(task=TASK, args=[release.pk], key=f"handoff:{release.pk}")


def handoff_verify(*, release: Release) -> Path:
    """The package's path after checking it against the stored sha256 (PackageNotBuilt / PackageTampered)."""
    path = package_file(release=release)
    if path is None or not release.package_sha256:
        raise PackageNotBuilt(f"Release {release.pk}: its hand-off package has not been built yet.")
    if not path.is_file():
        raise PackageTampered(f"Release {release.pk}: the hand-off package is missing ({path.name}).")
    actual = file_sha256(path)
    if actual != release.package_sha256:
        raise PackageTampered(
            f"Release {release.pk}: the hand-off package was changed after it was built (sha256 {actual}, stored "
            f"{release.package_sha256}). Rebuild it with manage.py handoff --release {release.pk}."
        )
    return path


# --- what goes in --------------------------------------------------------------------------------------------------


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _user(user) -> str | None:
    return user.get_username() if user is not None else None


def _collect(*, release: Release) -> dict:
    decision = GateDecision.objects.select_related(
        "policy", "reviewer", "evaluation_batch__batch__criteria_version", "evaluation_batch__eval_set"
    ).get(pk=release.decision_id)
    checkpoint = release.checkpoint
    runs = lineage_runs(run=checkpoint.run)
    snapshots = lineage_snapshots(run=checkpoint.run)
    training_batches = list(
        Batch.objects.filter(dataset_snapshots__in=snapshots)
        .distinct()
        .select_related("criteria_version")
        .order_by("created_at", "pk")
    )
    eval_batch = decision.evaluation_batch.batch
    batches = [*training_batches, eval_batch]
    agreement = latest_snapshots(batches=batches)
    criteria = {b.criteria_version_id: b.criteria_version for b in batches}
    results = evaluation_batch_results(evaluation_batch=decision.evaluation_batch)
    results.pop("_estimates", None)
    stored = latest_leaderboard(project_id=release.project_id)
    leaderboard = stored.data if stored is not None else project_leaderboard(project=release.project, use_cache=False)
    return {
        "release": release,
        "decision": decision,
        "checkpoint": checkpoint,
        "runs": runs,
        "snapshots": snapshots,
        "snapshot_batches": {s.pk: [b.name for b in s.batches.order_by("pk")] for s in snapshots},
        "batches": batches,
        "training_batches": training_batches,
        "eval_batch": eval_batch,
        "agreement": agreement,
        "criteria": sorted(criteria.values(), key=lambda c: c.number),
        "results": results,
        "leaderboard": leaderboard,
        "leaderboard_computed_at": _iso(stored.computed_at) if stored is not None else None,
    }


def _sampling(batch: Batch) -> dict:
    items = Item.objects.filter(batch=batch).order_by()
    if batch.kind == Batch.Kind.EVALUATION:
        # An evaluation batch's items carry no stratum (red_team is served as adversarial): its prompts' do.
        source = EvaluationItem.objects.filter(item__batch=batch).order_by()
        strata_rows = source.values(stratum=F("prompt__stratum"))
        category_rows = source.values(category=F("prompt__category"))
    else:
        strata_rows, category_rows = items.values("stratum"), items.values("category")
    strata = {row["stratum"] or "unspecified": row["n"] for row in strata_rows.annotate(n=Count("pk"))}
    categories = list(category_rows.annotate(n=Count("pk")).order_by("-n", "category")[: MAX_CATEGORIES + 1])
    imports = [
        {
            "filename": r.filename,
            "sha256": r.sha256 or None,  # empty for imports recorded before the digest was kept
            "lines": r.lines,
            "created": r.created,
            "skipped": r.skipped,
            "strata": r.strata,
            "imported_at": _iso(r.created_at),
            "by": _user(r.created_by),
        }
        for r in ImportRecord.objects.filter(batch=batch, status=ImportRecord.Status.IMPORTED)
        .select_related("created_by")
        .order_by("created_at", "pk")
    ]
    return {
        "batch": {"id": batch.pk, "name": batch.name, "kind": batch.kind, "status": batch.status},
        "criteria_version": batch.criteria_version.number,
        "items": sum(strata.values()),
        "strata": strata,
        "categories": {(c["category"] or "(none)"): c["n"] for c in categories[:MAX_CATEGORIES]},
        "categories_truncated": len(categories) > MAX_CATEGORIES,
        "imports": imports,
    }


def _judging(batch: Batch, snapshot) -> dict:
    """Who judged a batch: from its latest agreement report, or counted when it has none yet."""
    if snapshot is not None:
        report = snapshot.report or {}
        return {"judgments": report.get("n_judgments"), "annotators": report.get("n_annotators")}
    row = Judgment.objects.filter(batch=batch).aggregate(n=Count("pk"), annotators=Count("annotator", distinct=True))
    return {"judgments": row["n"], "annotators": row["annotators"]}


def _agreement(batch: Batch, snapshot) -> dict:
    report = (snapshot.report or {}) if snapshot is not None else {}
    return {
        "batch": {"id": batch.pk, "name": batch.name, "kind": batch.kind},
        "computed_at": _iso(snapshot.computed_at) if snapshot is not None else None,
        "judgment_count": snapshot.judgment_count if snapshot is not None else None,
        "cohen_kappa": report.get("cohen_kappa"),
        "fleiss_kappa": report.get("fleiss_kappa"),
        "krippendorff_alpha": report.get("krippendorff_alpha"),
        "agreement": report.get("agreement"),
        "gold_accuracy": report.get("gold_accuracy"),
        "flags": report.get("flags", []),
        "n_annotators": report.get("n_annotators"),
        "n_items": report.get("n_items"),
        "report": report or None,
    }


def _guidelines(project, criteria: list) -> tuple[str, dict]:
    """The guidelines as the annotator page shows them: the project's description (the page's "Guidelines") and,
    per criteria version, what the annotator API serves with each item (annotation.annotator_apis.criteria_payload)."""
    from annotation.annotator_apis import criteria_payload

    versions = []
    for cv in criteria:
        payload = criteria_payload(criteria=cv, project=project)
        versions.append(
            {
                "criteria_version": payload["criteria_version"],
                "dimensions": payload["dimensions"],
                "choices": payload["choices"],
                "require_justification": payload["require_justification"],
                "scope": cv.scope,
                "tie_guidance": cv.tie_guidance,
                "disqualifiers": cv.disqualifiers,
            }
        )
    data = {"project": project.name, "guidelines": project.description, "versions": versions}
    lines = [f"# Annotator guidelines: {project.name}", "", "## Guidelines (shown above every item)", ""]
    lines += [project.description or "(the project has no written guidelines)", ""]
    for v in versions:
        lines += [f"## Criteria version {v['criteria_version']}", "", "Answers offered: " + ", ".join(v["choices"])]
        lines += ["A written justification is required." if v["require_justification"] else "", ""]
        lines += [
            "What is judged:",
            "",
            v["scope"] or "(no scope written)",
            "",
            "Per criterion, asked on each item:",
            "",
        ]
        lines += [f"- **{d['label']}**: {d['description']}" for d in v["dimensions"]] or ["(none)"]
        lines += ["", "When both answers are equally good:", "", v["tie_guidance"] or "(no guidance written)", ""]
    return "\n".join(lines), data


# --- reward models ---------------------------------------------------------------------------------------------


def _majority_side(votes: dict) -> str | None:
    a, b = votes.get("a", 0) or 0, votes.get("b", 0) or 0
    return "a" if a > b else "b" if b > a else None


def reward_model_dimension_accuracy(*, run: TrainingRun, snapshot: DatasetSnapshot) -> dict:
    """The reward model's accuracy per criteria dimension (and per stratum) on the snapshot's validation pairs,
    scored now with the run's saved checkpoint (evaluation.handoff_metrics: torch is loaded; call it in a worker).
    The chosen side of a pair is the majority of its a/b votes (pairs where they are level are skipped); a
    dimension's votes are its non-gold judgments' canonical answers."""
    from evaluation import handoff_metrics

    checkpoint = Path(settings.ARTIFACTS_DIR) / run.output_dir / "checkpoint"
    if not (checkpoint / "config.json").is_file():
        return {"available": False, "reason": f"no saved reward model at {checkpoint}"}
    path = dataset_files(snapshot=snapshot)["validation"]
    pairs, item_pks, sides = [], [], []
    with open(path, "rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            row = json.loads(line)
            side = _majority_side(row.get("votes") or {})
            if side is None or row.get("item_pk") is None:
                continue
            pairs.append((row["prompt"], row["chosen"], row["rejected"]))
            item_pks.append(row["item_pk"])
            sides.append(side)
            if len(pairs) >= DIMENSION_PAIRS_LIMIT:
                break
    if not pairs:
        return {"available": False, "reason": "no validation pair with a decided side"}
    index = {pk: i for i, pk in enumerate(item_pks)}
    keys: set[str] = set()
    votes: list[dict[str, dict[str, int]]] = [{} for _ in item_pks]
    strata = dict(Item.objects.filter(pk__in=item_pks).values_list("pk", "stratum"))
    for start in range(0, len(item_pks), 500):
        chunk = item_pks[start : start + 500]
        for item_id, dims in Judgment.objects.filter(item_id__in=chunk, is_gold=False).values_list(
            "item_id", "dimensions"
        ):
            for key, answer in (dims or {}).items():
                if answer in ("a", "b", "tie"):
                    keys.add(key)
                    counts = votes[index[item_id]].setdefault(key, {})
                    counts[answer] = counts.get(answer, 0) + 1
    chosen, rejected = handoff_metrics.score_pairs(checkpoint_dir=str(checkpoint), pairs=pairs)
    by_dimension = handoff_metrics.dimension_accuracy(
        chosen_scores=chosen,
        rejected_scores=rejected,
        chosen_sides=sides,
        dimension_votes={key: [v.get(key) for v in votes] for key in sorted(keys)},
    )
    by_stratum = handoff_metrics.group_accuracy(
        chosen_scores=chosen, rejected_scores=rejected, groups=[strata.get(pk) or "unspecified" for pk in item_pks]
    )
    return {"available": True, "n_pairs": len(pairs), "by_dimension": by_dimension, "by_stratum": by_stratum}


def _reward_models(runs: list[TrainingRun], *, score: bool) -> list[dict]:
    models = []
    for run in runs:
        if run.kind != Kind.REWARD_MODEL:
            continue
        entry = {
            "run": run.pk,
            "status": run.status,
            "snapshot": run.snapshot_id,
            "base_model": (run.config or {}).get("base_model"),
            "finished_at": _iso(run.finished_at),
            "overall": run.evaluation or {},
        }
        stored = run.evaluation or {}
        entry["by_stratum"] = stored.get("by_stratum")
        entry["by_dimension"] = stored.get("by_dimension")
        if entry["by_dimension"] is None and score and run.snapshot_id:
            try:
                computed = reward_model_dimension_accuracy(run=run, snapshot=run.snapshot)
            except Exception as exc:
                logger.warning("handoff: per-dimension accuracy of run %s failed: %s", run.pk, exc)
                computed = {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
            entry["computed_at_packaging"] = computed
            if computed.get("available"):
                entry["by_dimension"] = computed["by_dimension"]
                entry["by_stratum"] = entry["by_stratum"] or computed["by_stratum"]
        models.append(entry)
    return models


# --- the archive -----------------------------------------------------------------------------------------------


def _gate(facts: dict) -> dict:
    d, release = facts["decision"], facts["release"]
    p = d.policy
    policy = {
        "version": p.version,
        "min_win_rate_lower": p.min_win_rate_lower,
        "max_red_team_failure": p.max_red_team_failure,
        "min_stratum_win_rate": p.min_stratum_win_rate,
        "min_judgments": p.min_judgments,
        "max_reward_length_spearman": p.max_reward_length_spearman,
        "blocking_flags": p.blocking_flags,
        "note": p.note,
        "created_at": _iso(p.created_at),
        "created_by": _user(p.created_by),
    }
    return {
        "policy": policy,
        "checks": d.checks,
        "decision": {
            "id": d.pk,
            "verdict": d.verdict,
            "note": d.note,
            "override": d.override,
            "override_reason": d.override_reason,
            "reviewer": _user(d.reviewer),
            "decided_at": _iso(d.created_at),
            "evaluation_batch": d.evaluation_batch_id,
        },
        "release": {
            "id": release.pk,
            "released_by": _user(release.released_by),
            "released_at": _iso(release.released_at),
            "superseded_at": _iso(release.superseded_at),
            "override": release.override,
        },
    }


def _write(w: _Writer, facts: dict, *, with_weights: bool) -> None:
    release, checkpoint = facts["release"], facts["checkpoint"]
    sampling = []
    agreement = []
    for batch in facts["batches"]:
        snap = facts["agreement"].get(batch.pk)
        entry = _sampling(batch)
        entry["judging"] = _judging(batch, snap)
        sampling.append(entry)
        agreement.append(_agreement(batch, snap))
    models = _reward_models(facts["runs"], score=True)
    gate = _gate(facts)
    w.text("README.md", render.readme(facts, sampling=sampling, agreement=agreement, models=models, gate=gate))
    for cv in facts["criteria"]:
        w.text(f"criteria/v{cv.number}.md", render.criteria_md(cv))
        w.json(f"criteria/v{cv.number}.json", render.criteria_json(cv))
    w.text("sampling.md", render.sampling_md(sampling))
    w.json("sampling.json", {"batches": sampling})
    guidelines_md, guidelines = _guidelines(release.project, facts["criteria"])
    w.text("guidelines.md", guidelines_md)
    w.json("guidelines.json", guidelines)
    for a in agreement:
        w.text(f"agreement/batch-{a['batch']['id']}.md", render.agreement_md(a))
        w.json(f"agreement/batch-{a['batch']['id']}.json", a)
    for snapshot in facts["snapshots"]:
        path = dataset_files(snapshot=snapshot)["manifest"]
        if path.is_file():
            w.file(f"datasets/snapshot-{snapshot.pk}/manifest.json", path)
    w.text("reward_model.md", render.reward_models_md(models))
    w.json("reward_model.json", {"reward_models": models})
    for run in facts["runs"]:
        w.json(f"runs/run-{run.pk}/config.json", {"id": run.pk, "kind": run.kind, "config": run.config})
        lineage = run.lineage
        if not lineage:  # a run that wrote none (a generate run before it finished): rebuilt now, and marked so
            from trainer.lineage import lineage_build

            lineage = {**lineage_build(run=run), "rebuilt_for_handoff": True}
        w.json(f"runs/run-{run.pk}/lineage.json", lineage)
    w.json("evaluation/results.json", facts["results"])
    w.json(
        "evaluation/leaderboard.json",
        {"computed_at": facts["leaderboard_computed_at"], "leaderboard": facts["leaderboard"]},
    )
    w.json(
        "evaluation/flags.json",
        {"batch": facts["results"].get("flags"), "leaderboard": facts["leaderboard"].get("flags")},
    )
    w.text("gate.md", render.gate_md(gate))
    w.json("gate.json", gate)
    folder = Path(settings.ARTIFACTS_DIR) / checkpoint.folder
    manifest = checkpoint.manifest or {}
    w.json(
        "checkpoint.json",
        {
            "id": checkpoint.pk,
            "run": checkpoint.run_id,
            "step": checkpoint.step,
            "final": checkpoint.final,
            "folder": checkpoint.folder,
            "size_bytes": checkpoint.size_bytes,
            "files": [{"path": name, "sha256": digest} for name, digest in sorted(manifest.items())],
            "weights": "included under checkpoint/" if with_weights else "referenced by path and sha256",
        },
    )
    if with_weights:
        for name in sorted(manifest):
            path = folder / name
            if not path.is_file():
                raise CheckpointChanged(f"Checkpoint {checkpoint.pk}: {name} is missing ({path}).")
            w.file(f"checkpoint/{name}", path)
            if w.entries[f"checkpoint/{name}"]["sha256"] != manifest[name]:
                raise CheckpointChanged(
                    f"Checkpoint {checkpoint.pk}: {name} differs from the sha256 recorded when it was saved."
                )
    manifest_body = {
        "package": w.root,
        "release": release.pk,
        "checkpoint": checkpoint.pk,
        "with_weights": with_weights,
        "files": dict(sorted(w.entries.items())),
    }
    w.json("manifest.json", manifest_body)
