"""Reward-model accuracy by criteria dimension, for the hand-off package: pure NumPy, no Django import.

`dimension_accuracy` takes per-pair reward scores and per-pair dimension votes; `score_pairs` loads a reward-model
checkpoint with transformers to produce those scores (only ever called in a worker: torch stays out of the web
process). evaluation/services/handoff.py reads the rows and files and calls both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

SIDES = ("a", "b")


def _pair_scores(chosen: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    """1 when the chosen answer scores higher, 0 when lower, ½ on a tie (trainer.ml.reward_model's convention)."""
    return np.where(chosen > rejected, 1.0, np.where(chosen < rejected, 0.0, 0.5))


def dimension_side(votes: Mapping[str, float] | None) -> str | None:
    """The side a dimension's votes prefer on one pair: "a" or "b" by plurality of a/b votes, "tie" when a and b
    are level (a dimension answered only "tie" included), None when nobody rated it ("na" and absent votes)."""
    if not votes:
        return None
    a, b, tie = (float(votes.get(key, 0) or 0) for key in ("a", "b", "tie"))
    if a + b + tie <= 0:
        return None
    if a > b:
        return "a"
    if b > a:
        return "b"
    return "tie"


def dimension_accuracy(
    *,
    chosen_scores: Sequence[float] | np.ndarray,
    rejected_scores: Sequence[float] | np.ndarray,
    chosen_sides: Sequence[str],
    dimension_votes: Mapping[str, Sequence[Mapping[str, float] | None]],
) -> dict[str, dict]:
    """Per dimension key, the reward model's pairwise accuracy:

    - `agreeing`: on the pairs whose dimension votes prefer the same side as the overall preference (the chosen
      answer): the share where the chosen answer scores higher (a score tie counts ½);
    - `rated`: on every pair where the dimension was rated and preferred a side, judged against the dimension's own
      side: the share where the side the dimension preferred scores higher. Pairs the dimension rated level
      (`n_tied`) have no side to score and are left out of both.

    `chosen_sides[i]` is "a" or "b" (which response the pair's chosen answer was); `dimension_votes[key][i]` the
    dimension's vote counts on pair i ({"a", "b", "tie"}), or None. Accuracies are None where no pair counts.
    """
    chosen = np.asarray(chosen_scores, dtype=float)
    rejected = np.asarray(rejected_scores, dtype=float)
    n = len(chosen)
    if len(rejected) != n or len(chosen_sides) != n:
        raise ValueError("chosen_scores, rejected_scores and chosen_sides must have one entry per pair.")
    correct = _pair_scores(chosen, rejected)  # 1 when the chosen side scores higher
    result: dict[str, dict] = {}
    for key, per_pair in dimension_votes.items():
        if len(per_pair) != n:
            raise ValueError(f"dimension {key!r}: {len(per_pair)} vote entries for {n} pairs.")
        sides = [dimension_side(votes) for votes in per_pair]
        preferred = np.array([s in SIDES for s in sides], dtype=bool)
        agrees = np.array([s in SIDES and s == c for s, c in zip(sides, chosen_sides, strict=True)], dtype=bool)
        # Against the dimension's side: where it disagrees with the overall preference, the model is right when the
        # rejected answer scores higher.
        against_dimension = np.where(agrees, correct, 1.0 - correct)
        result[key] = {
            "agreeing_accuracy": float(correct[agrees].mean()) if agrees.any() else None,
            "n_agreeing": int(agrees.sum()),
            "rated_accuracy": float(against_dimension[preferred].mean()) if preferred.any() else None,
            "n_rated": int(preferred.sum()),
            "n_disagreeing": int((preferred & ~agrees).sum()),
            "n_tied": int(sum(1 for s in sides if s == "tie")),
        }
    return result


def group_accuracy(
    *,
    chosen_scores: Sequence[float] | np.ndarray,
    rejected_scores: Sequence[float] | np.ndarray,
    groups: Sequence[str],
) -> dict[str, dict]:
    """Pairwise accuracy (chosen above rejected, ties ½) per group label (a stratum), groups in sorted order."""
    correct = _pair_scores(np.asarray(chosen_scores, dtype=float), np.asarray(rejected_scores, dtype=float))
    labels = np.asarray(groups, dtype=object)
    return {
        str(name): {"accuracy": float(correct[labels == name].mean()), "n": int((labels == name).sum())}
        for name in sorted(set(groups))
    }


def score_pairs(
    *, checkpoint_dir: str, pairs: Sequence[tuple[object, object, object]], batch_size: int = 8, max_length: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Reward scores of (prompt, chosen, rejected) pairs from a saved sequence-classification reward model. A prompt
    is text or a list of messages; an answer is text or a list with the assistant message. Imports torch: call it in
    a worker only."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint_dir, num_labels=1)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id

    def text(prompt, answer) -> str:
        if isinstance(prompt, list):
            messages = list(prompt) + (list(answer) if isinstance(answer, list) else [])
            if getattr(tokenizer, "chat_template", None):
                return tokenizer.apply_chat_template(messages, tokenize=False)
            return "\n".join(str(m.get("content", "")) for m in messages)
        return f"{prompt}{answer if isinstance(answer, str) else ''}"

    scores: dict[str, list[float]] = {"chosen": [], "rejected": []}
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            rows = pairs[start : start + batch_size]
            for index, name in ((1, "chosen"), (2, "rejected")):
                batch = tokenizer(
                    [text(row[0], row[index]) for row in rows],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                logits = model(**batch).logits.squeeze(-1).float().cpu().numpy()
                scores[name].extend(np.atleast_1d(logits).tolist())
    return np.array(scores["chosen"], dtype=float), np.array(scores["rejected"], dtype=float)
