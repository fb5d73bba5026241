"""`manage.py demo_model [--out PATH]`: a tiny base model for the demo's training runs, built once.

No machine here can download from a model hub, so the demo's reward-model, DPO and PPO runs start from a random-weight
Llama whose tokenizer was trained on the demo items' texts (trainer.ml.tiny). It is written to a temporary folder
and renamed into place, so an interrupted build never leaves a half model that a later run would take as done.
"""

import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo.data import demo_lines

# The files a finished build has; their presence is what "already there" means.
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json")
VOCAB_SIZE = 1024


def default_path() -> Path:
    return Path(settings.VAR_DIR) / "models" / "tiny-demo"


def demo_corpus() -> list[str]:
    """Every prompt, turn and response of the demo items: the text the demo's runs will tokenize."""
    texts = []
    for line in demo_lines():
        texts += [m["content"] for m in line.get("messages", [])] or [line["prompt"]]
        texts += [line["response_a"]["text"], line["response_b"]["text"]]
    return texts


class Command(BaseCommand):
    help = "Build the tiny demo base model (tokenizer fitted to the demo items) unless it is already there."

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, default=None, help="Folder to write; default VAR_DIR/models/tiny-demo.")

    def handle(self, *args, out: Path | None, **options):
        from transformers.utils import logging as hf_logging

        from trainer.ml.tiny import build_tiny_model  # torch only when the command runs

        hf_logging.disable_progress_bar()  # save_pretrained's shard bar is noise in `make seed`

        path = (out or default_path()).resolve()
        if all((path / name).is_file() for name in MODEL_FILES):
            self.stdout.write(f"Base model for demo runs: {path} (already there)")
            return
        if path.exists():  # something else lives there: never overwrite what this command did not make
            raise CommandError(f"{path} exists but is not a complete model; remove it to rebuild.")
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".tiny-demo-", dir=path.parent))
        try:
            build_tiny_model(scratch, corpus=demo_corpus(), vocab_size=VOCAB_SIZE)
            scratch.rename(path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self.stdout.write(f"Base model for demo runs: {path}")
