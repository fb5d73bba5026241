from django.apps import AppConfig


class TrainerConfig(AppConfig):
    name = "trainer"
    verbose_name = "Training runs"

    def ready(self) -> None:
        from annotation.roles import grant_on_migrate

        # The run admin decides by project role (trainer/admin.py); the view permissions keep the admin index honest.
        grant_on_migrate(
            self,
            {
                "ml_engineer": ["view_trainingrun", "view_runmetric"],
                "lead": ["view_trainingrun"],
                "reviewer": ["view_trainingrun"],
            },
        )
