"""``manage.py sessions``: list the sessions of the server behind a Django database."""

from ....interfaces.django._commands import SessionsCommand as Command

__all__ = ["Command"]
