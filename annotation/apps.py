from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "annotation"
    verbose_name = "Annotation"

    def ready(self) -> None:
        from annotation.roles import grant_on_migrate

        grant_on_migrate(
            self,
            {
                "lead": [
                    *(
                        f"{verb}_{model}"
                        for verb in ("view", "add", "change")
                        for model in ("project", "batch", "membership")
                    ),
                    "view_criteriaversion",
                    "add_criteriaversion",
                    "view_item",
                    "view_importrecord",
                    "add_importrecord",
                    "view_annotationsession",
                    "view_assignment",
                    "view_judgment",
                ],
                "ml_engineer": ["view_project", "view_batch", "view_criteriaversion", "view_item"],
                "reviewer": ["view_project", "view_batch", "view_criteriaversion"],
            },
        )
