from django.apps import AppConfig


class RewardsConfig(AppConfig):
    name = "rewards"
    verbose_name = "Rewards: agreement, aggregation, dataset snapshots"

    def ready(self) -> None:
        from annotation.signals import batch_closed, judgment_recorded
        from rewards import receivers

        batch_closed.connect(receivers.snapshot_on_batch_closed, dispatch_uid="rewards.snapshot_on_batch_closed")
        judgment_recorded.connect(receivers.refresh_on_judgments, dispatch_uid="rewards.refresh_on_judgments")
