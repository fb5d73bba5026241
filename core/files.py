"""Reading files the same way everywhere: the sha256 a snapshot, a checkpoint or a prompt file is checked against.

No Django import: the training code (trainer/ml) uses it inside the worker's training functions."""

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
