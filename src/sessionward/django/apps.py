"""The Django app: ``INSTALLED_APPS += ["sessionward.django"]`` adds the management commands."""

from django.apps import AppConfig  # type: ignore[import-untyped]


class SessionwardConfig(AppConfig):  # type: ignore[misc]
    name = "sessionward.django"
    label = "sessionward"
    verbose_name = "sessionward"
