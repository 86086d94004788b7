"""What every command-line interface shares: signals, exit statuses, the server URL,
options and rendering.

The commands themselves live in ``interfaces.cli`` (the ``sessionward`` group),
``interfaces.reaper``, ``interfaces.top`` and ``interfaces.recorder``; they all
import from here and never from each other, so the group can register them
without a circle.  Kept empty: the console script imports ``_signals`` first
thing, before anything slow.
"""
