from django.apps import AppConfig


class DemoConfig(AppConfig):
    # No models: the app exists so Django finds its management commands.
    name = "demo"
    verbose_name = "Demo"
