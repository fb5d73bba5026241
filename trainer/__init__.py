"""Training runs (reward model, DPO, PPO), their Celery tasks, checkpoints and lineage."""
