from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    name = "playground.simulator"
    verbose_name = "Gateway simulator"
