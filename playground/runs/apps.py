from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "playground.runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        from playground.runs import signals  # noqa: F401
