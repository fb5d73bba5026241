"""The exact bytes of a small export, pinned: a faster writer (raw reads, a different JSON encoder, cached split
hashes) must produce the same files as the one these golden files were made with (commit 69a5064).

The golden files are the export's train, validation and excluded files with each "item_pk" replaced by the item's
position in the batch, since the database hands out the ids; everything else is compared byte for byte, and the
sha256 the snapshot stores is checked against the file it names. Issue 15 added `"source":"human"` after each line's
"batch" (every row says where it came from); the golden files were changed by that insertion only.
"""

import hashlib
import json
import re
from pathlib import Path

import pytest

from rewards.selectors import batch_export_rows, batch_item_votes_iter, dataset_files
from rewards.services.datasets import dataset_create
from tests.rewards.test_datasets import make_batch

GOLDEN = Path(__file__).parent / "golden_export"
NAMES = ("train", "validation", "excluded")
TRICKY = 'Quotes " and \\ backslash, tab\there, newline\nthere, bell \x07, café, 東京, emoji 🙂, \u2028 sep'


def _items(*, chat: bool) -> list[dict]:
    votes = [
        ["a", "a", "a"],
        ["b", "b", "b"],
        ["a", "a", "tie"],
        ["b", "tie", "tie"],
        ["a", "b", "a"],
        ["a", "b", "tie"],
        ["both_bad", "both_bad", "a"],
        ["a", "b"],
        ["tie", "tie", "tie"],
        ["a", "a", "b", "b", "a", "b", "a"],
    ]
    items = []
    for n in range(30):
        prompt = f"Question {n % 11}:  {TRICKY if n % 4 == 0 else 'plain words'}  " + ("ÉCOLE" if n % 3 else "école")
        spec = {"prompt": prompt, "votes": votes[n % len(votes)]}
        if n % 13 == 5:
            spec["gold"] = "a"
        if chat and n % 2:
            spec = {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": prompt},  # jsonb's key order, as SQLite keeps it
                ],
                "votes": spec["votes"],
            }
        items.append(spec)
    return items


def _normalised(data: bytes, first_pk: int) -> bytes:
    return re.sub(rb'"item_pk":(\d+)', lambda m: b'"item_pk":%d' % (int(m.group(1)) - first_pk), data)


@pytest.mark.parametrize(
    ("case", "chat", "weighting"),
    [("standard", False, "vote"), ("conversational", True, "vote"), ("dawid_skene", False, "dawid_skene")],
)
@pytest.mark.parametrize("chunk_size", [7, 2_000])
def test_export_bytes_match_the_golden_files(project, settings, tmp_path, case, chat, weighting, chunk_size):
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    batch = make_batch(project, _items(chat=chat), name=f"golden-{case}")
    first_pk = batch.items.order_by("pk").values_list("pk", flat=True)[0]
    snapshot = dataset_create(
        project=project,
        batch_ids=[batch.pk],
        weighting=weighting,
        validation_fraction=0.3,
        seed=7,
        chunk_size=chunk_size,
    )
    files = dataset_files(snapshot=snapshot)
    for name in NAMES:
        data = files[name].read_bytes()
        assert hashlib.sha256(data).hexdigest() == snapshot.sha256[name]
        assert _normalised(data, first_pk) == (GOLDEN / case / f"{name}.jsonl").read_bytes(), f"{case}/{name}"


@pytest.mark.parametrize("chunk_size", [1, 4, 2_000])
def test_export_rows_are_the_items_with_their_votes(project, chunk_size):
    """The raw reader behind the writer (a COPY on PostgreSQL, keyset chunks elsewhere) returns what the ORM
    reads: every item of the batch once, in id order, with its vote counts, and nothing of another batch."""
    batch = make_batch(project, _items(chat=True), name="rows")
    make_batch(project, _items(chat=False), name="other")
    expected = [(*entry.item, *entry.votes.values()) for entry in batch_item_votes_iter(batch=batch, chunk_size=2_000)]
    rows = [
        (*row[:3], json.loads(row[3]) if row[3] is not None else None, *row[4:])
        for row in batch_export_rows(batch=batch, chunk_size=chunk_size)
    ]
    assert rows == expected and len(rows) == 30
