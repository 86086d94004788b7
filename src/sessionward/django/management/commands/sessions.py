"""``manage.py sessions``: list the sessions of the server behind a Django database."""

from ....integrations.django._commands import SessionsCommand as Command

__all__ = ["Command"]
