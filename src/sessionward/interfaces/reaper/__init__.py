"""The policy reaper: ``sessionward reap`` and ``sessionward policy``."""

from ._cli import policy_group, reap_command

__all__ = ["policy_group", "reap_command"]
