"""A signal whose exception got lost on the way still stops the command.

CPython can drop an exception raised by a signal handler while it compiles a
module, and before 3.12 wraps one raised inside ``__set_name__`` in a
``RuntimeError``; a SIGTERM that landed there once left the reaper asleep for
its whole ``--max-interval``.  The handler's record of the signal is what counts.
"""

from __future__ import annotations

import signal

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
