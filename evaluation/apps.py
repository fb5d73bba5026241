from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "evaluation"
    verbose_name = "Evaluation"

    def ready(self) -> None:
        from annotation.signals import batch_closed
        from evaluation import receivers

        batch_closed.connect(
            receivers.refresh_leaderboard_on_batch_closed, dispatch_uid="evaluation.refresh_leaderboard_on_batch_closed"
        )
