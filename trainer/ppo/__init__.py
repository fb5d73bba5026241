"""PPO for RLHF, ours because TRL 1.x no longer ships it: `train_ppo` is the entry point (see trainer/ppo/train.py).

Importing this package stays torch-free; the training code loads when `train_ppo` is called.
"""

from __future__ import annotations

from pathlib import Path

from trainer.progress import Progress


def train_ppo(
    *,
    config: dict,
    train_file: Path,
    validation_file: Path,
    reward_model_dir: Path,
    output_dir: Path,
    progress: Progress,
    on_checkpoint=None,
    resume_from: Path | None = None,
) -> dict:
    """See trainer.ppo.train.train_ppo."""
    from trainer.ppo.train import train_ppo as run

    return run(
        config=config,
        train_file=train_file,
        validation_file=validation_file,
        reward_model_dir=reward_model_dir,
        output_dir=output_dir,
        progress=progress,
        resume_from=resume_from,
        **({"on_checkpoint": on_checkpoint} if on_checkpoint is not None else {}),
    )
