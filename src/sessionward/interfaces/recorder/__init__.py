"""The flight recorder: ``sessionward record`` and ``sessionward history``."""

from ._cli import history_command, record_command
from ._store import Recorder, Recording, StoredFrame

__all__ = ["Recorder", "Recording", "StoredFrame", "history_command", "record_command"]
