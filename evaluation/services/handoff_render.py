"""The hand-off package's Markdown: README.md and the readable twin of each JSON file, from the figures
evaluation.services.handoff collected (plain dicts and the rows it read; no query here)."""

from __future__ import annotations

import json


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _user(user) -> str | None:
    return user.get_username() if user is not None else None


TOP_CATEGORIES = 50  # categories listed per batch in sampling.md (sampling.json has them all)


def value_of(d) -> float | None:
    return d.get("value") if isinstance(d, dict) else None


def _pct(value, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f} %"


def _num(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def criteria_json(cv) -> dict:
    return {
        "id": cv.pk,
        "number": cv.number,
        "created_at": _iso(cv.created_at),
        "created_by": _user(cv.created_by),
        "scope": cv.scope,
        "dimensions": sorted(cv.dimensions or [], key=lambda d: d.get("priority", 0)),
        "disqualifiers": cv.disqualifiers,
        "tie_rule": cv.tie_rule,
        "tie_guidance": cv.tie_guidance,
    }


def criteria_md(cv) -> str:
    data = criteria_json(cv)
    lines = [f"# Criteria version {cv.number}", "", f"Written {data['created_at']} by {data['created_by'] or '—'}.", ""]
    lines += ["## Scope", "", cv.scope or "(none written)", "", "## Dimensions (in priority order)", ""]
    for d in data["dimensions"]:
        lines.append(f"- **{d.get('label', d.get('key'))}** (`{d.get('key')}`): {d.get('description', '')}")
    if not data["dimensions"]:
        lines.append("(none: an overall preference only)")
    lines += ["", "## Disqualifiers", ""]
    lines += [f"- {q if isinstance(q, str) else json.dumps(q)}" for q in cv.disqualifiers or []] or ["(none)"]
    lines += ["", "## Ties", "", f"Rule: `{cv.tie_rule}`.", "", cv.tie_guidance or "(no guidance written)", ""]
    return "\n".join(lines)


def agreement_md(a: dict) -> str:
    lines = [f"# Agreement: batch {a['batch']['name']} ({a['batch']['kind']})", ""]
    if a["computed_at"] is None:
        return "\n".join([*lines, "No agreement report has been computed for this batch.", ""])
    lines += [
        f"Latest report, computed {a['computed_at']} on {a['judgment_count']} judgments "
        f"by {a['n_annotators']} annotators over {a['n_items']} items.",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| Cohen's kappa (mean over annotator pairs) | {_num(value_of(a['cohen_kappa']))} |",
        f"| Fleiss' kappa | {_num(value_of(a['fleiss_kappa']))} |",
        f"| Krippendorff's alpha | {_num(value_of(a['krippendorff_alpha']))} |",
        f"| percent agreement | {_pct(value_of(a['agreement']))} |",
        f"| gold accuracy | {_pct(value_of(a['gold_accuracy']))} |",
        "",
        "## Flags",
        "",
    ]
    flags = a["flags"] or []
    lines += [f"- {json.dumps(f, default=str)}" for f in flags] or ["(none)"]
    return "\n".join([*lines, ""])


def reward_models_md(models: list[dict]) -> str:
    lines = ["# Reward models in the lineage", ""]
    if not models:
        return "\n".join([*lines, "No reward model is part of this checkpoint's lineage.", ""])
    for m in models:
        o = m["overall"]
        lines += [
            f"## Run {m['run']} (trained on dataset snapshot {m['snapshot']}, base model `{m['base_model']}`)",
            "",
            f"- accuracy on the validation pairs: {_pct(o.get('accuracy'))} ({o.get('n_pairs', '—')} pairs)",
            f"- accuracy where the chosen answer is the shorter: {_pct(o.get('accuracy_shorter_chosen'))}",
            f'- the "prefer the longer answer" baseline: {_pct(o.get("baseline_longer_accuracy"))}',
            f"- reward–length Spearman: {_num(o.get('reward_length_spearman'))}",
            "",
        ]
        if m.get("by_stratum"):
            lines += ["### By stratum", "", "| stratum | accuracy | pairs |", "| --- | --- | --- |"]
            for name, s in m["by_stratum"].items():
                lines.append(f"| {name} | {_pct(s.get('accuracy'))} | {s.get('n')} |")
            lines.append("")
        if m.get("by_dimension"):
            lines += [
                "### By criteria dimension",
                "",
                "Agreeing: pairs whose dimension votes prefer the chosen answer. Rated: every pair where the "
                "dimension preferred a side, scored against that side.",
                "",
                "| dimension | accuracy (agreeing) | pairs | accuracy (rated) | pairs | disagreeing | level |",
                "| --- | --- | --- | --- | --- | --- | --- |",
            ]
            for key, d in m["by_dimension"].items():
                lines.append(
                    f"| {key} | {_pct(d['agreeing_accuracy'])} | {d['n_agreeing']} | {_pct(d['rated_accuracy'])} "
                    f"| {d['n_rated']} | {d['n_disagreeing']} | {d['n_tied']} |"
                )
            lines.append("")
        else:
            why = (m.get("computed_at_packaging") or {}).get("reason") or "not recorded by the run"
            lines += [f"By stratum and by dimension: not available ({why}).", ""]
    return "\n".join(lines)


def _estimate(e: dict | None) -> str:
    if not e or e.get("value") is None:
        return "—"
    return f"{_pct(e['value'])} (95 % interval {_pct(e.get('low'))} – {_pct(e.get('high'))}, n = {e.get('n')})"


def gate_md(gate: dict) -> str:
    p, d, r = gate["policy"], gate["decision"], gate["release"]
    lines = [f"# Gate: policy version {p['version']}", ""]
    if r["override"] or d["override"]:
        lines += [f"**OVERRIDE: released although a criterion failed. Reason: {d['override_reason']}**", ""]
    lines += [
        "## Criteria",
        "",
        "| criterion | value | threshold | result | evidence |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in gate["checks"] or []:
        result = "pass" if c.get("passed") else "**FAIL**"
        name = c.get("label") or c.get("criterion")
        lines.append(f"| {name} | {c.get('value')} | {c.get('threshold')} | {result} | {c.get('evidence') or ''} |")
    lines += [
        "",
        "## Decision",
        "",
        f"- verdict: **{d['verdict']}** by {d['reviewer']} on {d['decided_at']}",
        f"- note: {d['note']}",
        f"- released by {r['released_by']} on {r['released_at']}",
        "",
        "## Policy",
        "",
    ]
    lines += [f"- {k}: {v}" for k, v in p.items()]
    return "\n".join([*lines, ""])


def _position(board: dict, checkpoint_id: int) -> tuple[int | None, int, dict | None]:
    players = board.get("players") or []
    ranked = sorted(
        (p for p in players if p.get("rating") is not None), key=lambda p: p.get("rating") or 0, reverse=True
    )
    for i, p in enumerate(ranked):
        if p.get("checkpoint_id") == checkpoint_id:
            return i + 1, len(ranked), p
    return None, len(ranked), None


def readme(facts: dict, *, sampling: list[dict], agreement: list[dict], models: list[dict], gate: dict) -> str:
    release, checkpoint, results = facts["release"], facts["checkpoint"], facts["results"]
    d = gate["decision"]
    override = d["override"] or gate["release"]["override"]
    lines = [
        f"# Hand-off: {release.project.name}, checkpoint {checkpoint.pk} (run {checkpoint.run_id}, step "
        f"{checkpoint.step})",
        "",
    ]
    if override:
        lines += [
            f"**OVERRIDE: this checkpoint was released although a gate criterion failed. Reason given by "
            f"{d['reviewer']}: {d['override_reason']}**",
            "",
        ]
    lines += [
        f"Released {gate['release']['released_at']} by {gate['release']['released_by']}. This README is generated; "
        "every figure below is in the JSON files beside it, and `manifest.json` holds every file's sha256.",
        "",
        "## What it was optimised for",
        "",
    ]
    for cv in facts["criteria"]:
        dims = ", ".join(d_.get("label", d_.get("key")) for d_ in criteria_json(cv)["dimensions"]) or "overall only"
        lines.append(f"- criteria version {cv.number}: {dims} (see `criteria/v{cv.number}.md`)")
    lines += ["", "## On what data", ""]
    for s in facts["snapshots"]:
        lines.append(
            f"- dataset snapshot {s.pk}: {s.train_count} training and {s.validation_count} validation pairs "
            f"({s.excluded_count} items excluded), rule `{s.weighting}`, from batches "
            + ", ".join(facts["snapshot_batches"][s.pk])
        )
    lines += ["", "| batch | kind | items | strata | criteria |", "| --- | --- | --- | --- | --- |"]
    for s in sampling:
        mix = ", ".join(f"{k} {v}" for k, v in s["strata"].items())
        lines.append(
            f"| {s['batch']['name']} | {s['batch']['kind']} | {s['items']} | {mix} | v{s['criteria_version']} |"
        )
    lines += ["", "The sampling procedure (categories, import files) is in `sampling.md`.", "", "## Judged by whom", ""]
    lines += [
        "| batch | judgments | annotators | Cohen's kappa | gold accuracy | flags |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s, a in zip(sampling, agreement, strict=True):
        lines.append(
            f"| {s['batch']['name']} | {s['judging']['judgments']} | {s['judging']['annotators']} | "
            f"{_num(value_of(a['cohen_kappa']))} | {_pct(value_of(a['gold_accuracy']))} | {len(a['flags'] or [])} |"
        )
    lines += ["", "Annotators worked from `guidelines.md`; agreement reports are in `agreement/`.", ""]
    lines += ["## How it scored", ""]
    counts = results.get("counts") or {}
    lines += [
        f"Evaluation batch {facts['eval_batch'].name}: {results['candidate']['label']} (candidate) against "
        f"{results['baseline']['label']} on evaluation set {results['eval_set']['name']} "
        f"v{results['eval_set']['version']}, {counts.get('judgments')} judgments over {counts.get('prompts')} prompts.",
        "",
        f"- win rate: {_estimate(results.get('win_rate'))}",
        f"- red-team failure rate: {_estimate(results.get('red_team_failure_rate'))}",
        f"- both-bad rate: {_estimate(results.get('both_bad_rate'))}",
    ]
    for row in results.get("strata") or []:
        lines.append(f"- stratum {row['stratum']}: {_estimate(row)}")
    rank, of, player = _position(facts["leaderboard"], checkpoint.pk)
    if rank is not None:
        lines.append(f"- leaderboard: position {rank} of {of} (Elo {_num(player.get('elo'), 0)})")
    else:
        lines.append("- leaderboard: this checkpoint is not on the stored leaderboard")
    for flag in results.get("flags") or []:
        lines.append(f"- flag: {flag.get('code')}: {flag.get('message', flag.get('detail', ''))}")
    for m in models:
        lines.append(f"- reward model run {m['run']}: validation accuracy {_pct(m['overall'].get('accuracy'))}")
    lines += ["", "## Who approved it", ""]
    lines += [
        f"Gate policy version {gate['policy']['version']}: "
        + ", ".join(
            f"{c.get('label') or c.get('criterion')} {'passed' if c.get('passed') else '**FAILED**'}"
            for c in gate["checks"] or []
        ),
        "",
        f'Reviewer **{d["reviewer"]}** decided **{d["verdict"]}** on {d["decided_at"]}: "{d["note"]}"',
        "",
    ]
    if override:
        lines += [f"**Override of a failed criterion: {d['override_reason']}**", ""]
    lines += [
        "## Files",
        "",
        "`criteria/`, `sampling.md`, `guidelines.md`, `agreement/`, `datasets/`, `reward_model.md`, `runs/`, "
        "`evaluation/`, `gate.md`, `checkpoint.json` (Markdown to read, JSON beside it), `manifest.json`.",
        "",
    ]
    return "\n".join(lines)


def sampling_md(sampling: list[dict]) -> str:
    lines = [
        "# Prompt sampling procedure",
        "",
        "Every batch in the lineage: its strata mix, categories and import files.",
        "",
    ]
    for s in sampling:
        lines += [f"## {s['batch']['name']} ({s['batch']['kind']}, criteria v{s['criteria_version']})", ""]
        lines += [f"{s['items']} items. Strata: " + ", ".join(f"{k} {v}" for k, v in s["strata"].items()), ""]
        cats = list(s["categories"].items())
        lines += ["Categories: " + ", ".join(f"{k} {v}" for k, v in cats[:TOP_CATEGORIES])]
        if len(cats) > TOP_CATEGORIES:
            lines.append(f"(and {len(cats) - TOP_CATEGORIES} more in sampling.json)")
        lines += ["", "Import files:", ""]
        lines += [
            f"- `{i['filename'] or '(unnamed)'}`: {i['created']} items of {i['lines']} lines, sha256 "
            f"{i['sha256'] or 'not recorded'}, {i['imported_at']}"
            for i in s["imports"]
        ] or ["- (no import record: items made by a service, e.g. an evaluation batch)"]
        lines.append("")
    return "\n".join(lines)
