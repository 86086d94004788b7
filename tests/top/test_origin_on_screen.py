"""The live view shows who holds a session, as its client said (escaped, untrusted)."""

from __future__ import annotations

import datetime as dt

from sessionward.core import (
    IDLE_IN_TRANSACTION,
    Action,
    Origin,
    ServerInfo,
    Session,
    Snapshot,
    lock_forest,
)
from sessionward.interfaces.top._app import _detail, _haystack, describe_ending
from sessionward.interfaces.top._frame import Frame

SERVER = ServerInfo(engine="postgresql", version="16.2", version_num=160002, own_pid=1)


def _frame(session: Session) -> Frame:
    snapshot = Snapshot(
        server=SERVER, taken_at=dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc),
        sessions=(session,),
    )  # fmt: skip
    return Frame(snapshot=snapshot, shown=(session,), forest=lock_forest(snapshot), cost_seconds=0)


def test_the_detail_pane_the_filter_and_the_question_name_the_code_line() -> None:
    origin = Origin(service="billing", host="web-1", pid=4242, holder="worker",
                    code="reports/daily.py:88")  # fmt: skip
    session = Session(pid=7, user="app", database="shop", state=IDLE_IN_TRANSACTION,
                      state_age_seconds=12.0, origin=origin)  # fmt: skip
    frame = _frame(session)
    assert "origin billing web-1[4242] worker reports/daily.py:88" in _detail(session, frame).plain
    assert "reports/daily.py:88" in _haystack(session)
    question = describe_ending(Action.TERMINATE, 7, frame)
    assert "held by reports/daily.py:88" in question


def test_a_hostile_origin_is_escaped_on_the_screen() -> None:
    origin = Origin(service="evil\x1b]0;owned\x07", code="x.py:1\x1b[2J")
    session = Session(pid=8, user="app", database="shop", state=IDLE_IN_TRANSACTION, origin=origin)
    frame = _frame(session)
    shown = _detail(session, frame).plain + describe_ending(Action.TERMINATE, 8, frame)
    assert "\x1b" not in shown
    assert "\x07" not in shown
