"""A signal whose exception got lost on the way still stops the command.

CPython can drop an exception raised by a signal handler while it compiles a
module, and before 3.12 wraps one raised inside ``__set_name__`` in a
``RuntimeError``; a SIGTERM that landed there once left the reaper asleep for
its whole ``--max-interval``.  The handler's record of the signal is what counts.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from sessionward.interfaces.reaper._stopping import Stopped, StopSwitch
from sessionward.interfaces.shell._process import internal_error
from sessionward.interfaces.shell._signals import (
    Terminated,
    received_signal,
    release_signals,
    stoppable,
    take_signals,
)


@pytest.fixture
def signals_taken():
    previous = take_signals()
    yield
    release_signals(previous, restore=True)


def _lose(signum):
    """Deliver ``signum`` to this process and swallow its exception, as ``compile`` may."""
    try:
        signal.raise_signal(signum)
    except (KeyboardInterrupt, Terminated):
        return
    raise AssertionError("the handler did not raise")


@pytest.mark.parametrize(("signum", "code", "said"), [
    (signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted"),
])  # fmt: skip
def test_the_command_ends_with_the_signals_status(signals_taken, capsys, signum, code, said):
    def run():
        _lose(signum)
        return 0

    assert stoppable(run) == code
    assert capsys.readouterr().err == f"sessionward: {said}\n"


def test_a_wrapped_signal_is_not_an_internal_error(signals_taken, capsys):
    def run():
        _lose(signal.SIGTERM)
        return internal_error(RuntimeError("Error calling __set_name__"))

    assert stoppable(run) == 143
    assert capsys.readouterr().err == "sessionward: terminated\n"


def test_without_a_signal_an_internal_error_stays_one(signals_taken, capsys):
    assert stoppable(lambda: internal_error(RuntimeError("boom"))) == 3
    assert "internal error: RuntimeError: boom" in capsys.readouterr().err


def test_the_reaper_takes_over_a_lost_signal(signals_taken):
    _lose(signal.SIGTERM)
    switch = StopSwitch()
    try:
        with pytest.raises(Stopped) as stopped:
            switch.install()
        assert stopped.value.signum == signal.SIGTERM
        assert switch.event.is_set()  # the loop will not go to sleep
        assert received_signal() is None  # the reaper's now: the command exits 0
    finally:
        switch.restore()


@pytest.mark.parametrize(("signum", "code", "said"), [
    (signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted"),
])  # fmt: skip
def test_while_starting_a_signal_exits_at_once(signum, code, said):
    """Before the command line's modules are imported nothing is open: the process exits
    with the signal's status even where the exception would have been swallowed."""
    program = (
        "import signal\n"
        "from sessionward.interfaces.shell._signals import take_signals\n"
        "take_signals(exit_while_starting=True)\n"
        "try:\n"
        f"    signal.raise_signal({int(signum)})\n"
        "except BaseException:\n"
        "    pass  # swallowed, as compile() may\n"
        "print('still running')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.returncode == code
    assert done.stdout == ""
    assert done.stderr == f"sessionward: {said}\n"


def test_a_signal_exception_python_can_only_report_is_not_printed():
    """Raised inside a weakref callback (importlib's module locks have one), a signal's
    exception becomes "Exception ignored in …" with a traceback: the console script
    keeps that quiet (the signal is recorded), and reports every other such error."""
    program = (
        "import weakref\n"
        "from sessionward.interfaces.shell._signals import Terminated, take_signals\n"
        "take_signals(exit_while_starting=True)\n"
        "class Thing:\n"
        "    pass\n"
        "def ours(_):\n"
        "    raise Terminated\n"
        "def theirs(_):\n"
        "    raise ValueError('a real problem')\n"
        "first, second = Thing(), Thing()\n"
        "refs = [weakref.ref(first, ours), weakref.ref(second, theirs)]\n"
        "del first, second\n"
        "print('alive')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.returncode == 0, done
    assert done.stdout == "alive\n"
    assert "ValueError: a real problem" in done.stderr
    assert "Terminated" not in done.stderr
