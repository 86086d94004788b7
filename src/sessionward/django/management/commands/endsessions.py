"""``manage.py endsessions``: terminate or cancel sessions, with the CLI's protections."""

from ....interfaces.django._commands import EndSessionsCommand as Command

__all__ = ["Command"]
