from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "crsrisk.jobs"
    label = "jobs"
    verbose_name = "Background jobs"
