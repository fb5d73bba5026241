from django.apps import AppConfig


class RewardsConfig(AppConfig):
    name = "rewards"
    verbose_name = "Rewards: agreement, aggregation, dataset snapshots"

    def ready(self) -> None:
        from annotation.roles import grant_on_migrate

        grant_on_migrate(
            self,
            {
                "lead": [
                    "view_agreementsnapshot",
                    "view_projectflagrules",
                    "change_projectflagrules",
                    "add_projectflagrules",
                    "view_datasetsnapshot",
                    "add_datasetsnapshot",
                ],
                "ml_engineer": ["view_datasetsnapshot", "add_datasetsnapshot", "view_agreementsnapshot"],
            },
        )
        from annotation.signals import batch_closed, judgment_recorded
        from rewards import receivers

        batch_closed.connect(receivers.snapshot_on_batch_closed, dispatch_uid="rewards.snapshot_on_batch_closed")
        judgment_recorded.connect(receivers.refresh_on_judgments, dispatch_uid="rewards.refresh_on_judgments")
