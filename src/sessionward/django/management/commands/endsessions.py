"""``manage.py endsessions``: terminate or cancel sessions, with the CLI's protections."""

from ....interfaces.django._commands import EndSessionsCommand


class Command(EndSessionsCommand):
    """Named ``Command`` in this module, as Django's own commands are."""


__all__ = ["Command"]
