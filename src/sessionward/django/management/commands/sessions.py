"""``manage.py sessions``: list the sessions of the server behind a Django database."""

from ....interfaces.django._commands import SessionsCommand


class Command(SessionsCommand):
    """Named ``Command`` in this module, as Django's own commands are."""


__all__ = ["Command"]
