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
    body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in demo_lines())
    return io.BytesIO(body.encode())
