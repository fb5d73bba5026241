"""Friendly demo data for `manage.py seed_demo`: about 300 everyday items, built the same way on every run.

Each family writes a better and a worse answer; here they are given to two made-up models, put on sides A and B,
and written as lines of the import format in ARCHITECTURE.md, so the demo goes through the real import.
"""

import io
import json
import random

from demo.data.adversarial import adversarial
from demo.data.everyday import cooking, travel, writing
from demo.data.pair import Pair
from demo.data.synthetic import synthetic
from demo.data.technical import coding, maths, science

SMALL_MODEL = "tandem-demo-small"
LARGE_MODEL = "tandem-demo-large"
# The large model writes the better answer most of the time, not always: annotators should not learn a shortcut.
LARGE_WINS = 0.8


def demo_pairs() -> dict[str, list[Pair]]:
    return {
        "usage": [*cooking(), *travel(), *writing(), *coding(), *maths(), *science()],
        "synthetic": synthetic(),
        "adversarial": adversarial(),
    }


def demo_lines() -> list[dict]:
    """The demo items as import-format dicts, in a shuffled but fixed order."""
    lines = []
    for stratum, pairs in demo_pairs().items():
        for pair in pairs:
            # Seeded by the key, so an item's sides and models never change when families are added.
            rng = random.Random(f"tandem-demo:{pair.key}")
            better_model, worse_model = (
                (LARGE_MODEL, SMALL_MODEL) if rng.random() < LARGE_WINS else (SMALL_MODEL, LARGE_MODEL)
            )
            better = {"model": better_model, "text": pair.better}
            worse = {"model": worse_model, "text": pair.worse}
            better_is_a = rng.random() < 0.5
            line = {"id": f"demo-{pair.key}"}
            if pair.messages:
                line["messages"] = pair.messages
            else:
                line["prompt"] = pair.prompt
            line["response_a"], line["response_b"] = (better, worse) if better_is_a else (worse, better)
            line["stratum"] = stratum
            line["category"] = pair.category
            if pair.gold:
                line["gold"] = "a" if better_is_a else "b"
            lines.append(line)
    random.Random("tandem-demo-order").shuffle(lines)
    return lines


def demo_jsonl() -> io.BytesIO:
    """The demo file, in memory: it is a few hundred kilobytes."""
    return _jsonl(demo_lines())


# Prompts the demo's annotators answer in writing (a demonstration batch), per stratum in the usual mix: the demo's
# own prompts, each once, under ids of their own so they never collide with the comparison items.
DEMONSTRATION_PROMPTS = {"usage": 8, "synthetic": 3, "adversarial": 1}


def demonstration_lines() -> list[dict]:
    """Prompt-only import lines for the demo's demonstration batch, in a fixed order."""
    lines = []
    for stratum, pairs in demo_pairs().items():
        chosen = random.Random(f"tandem-demo-demonstrations:{stratum}").sample(pairs, DEMONSTRATION_PROMPTS[stratum])
        for pair in chosen:
            line = {"id": f"write-{pair.key}", "stratum": stratum, "category": pair.category}
            if pair.messages:
                line["messages"] = pair.messages
            else:
                line["prompt"] = pair.prompt
            lines.append(line)
    return lines


def demonstration_jsonl() -> io.BytesIO:
    return _jsonl(demonstration_lines())


def _jsonl(lines: list[dict]) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode())
