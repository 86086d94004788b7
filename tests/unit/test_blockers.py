import datetime as dt

from sessionward.core import ServerInfo, Session, Snapshot, WaitNode, lock_forest, root_blockers

SERVER = ServerInfo(engine="postgresql", version="16.2", version_num=160002, own_pid=1)


def snapshot(*sessions):
    return Snapshot(
        server=SERVER,
        taken_at=dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc),
        sessions=tuple(sessions),
    )


def waits(pid, *blockers, **fields):
    return Session(pid=pid, blocked_by=blockers, **fields)


def shape(node: WaitNode):
    """A tree as nested tuples: (pid, (children...))."""
    return (node.pid, tuple(shape(w) for w in node.waiters))


def every_pid(node: WaitNode):
    return {node.pid} | node.descendants()


def test_no_waits_no_forest():
    assert lock_forest(snapshot(Session(pid=10), Session(pid=11))) == ()
    assert root_blockers(snapshot(Session(pid=10)), [10]) == ()


def test_three_level_chain():
    a, b, c = Session(pid=10), waits(20, 10), waits(30, 20)
    forest = lock_forest(snapshot(c, b, a))
    assert [shape(t) for t in forest] == [(10, ((20, ((30, ()),)),))]
    root = forest[0]
    assert root.session is a
    assert root.waiters[0].session is b
    assert root.waiters[0].waiters[0].session is c
    assert root.descendants() == {20, 30}


def test_two_roots_sorted_by_number_of_waiters():
    forest = lock_forest(
        snapshot(
            # pid 10 blocks one session, pid 50 three (two directly, one behind).
            Session(pid=10),
            waits(11, 10),
            Session(pid=50),
            waits(51, 50),
            waits(52, 50),
            waits(53, 52),
        )
    )
    assert [t.pid for t in forest] == [50, 10]
    assert [len(t.descendants()) for t in forest] == [3, 1]
    assert shape(forest[0]) == (50, ((51, ()), (52, ((53, ()),))))


def test_equal_roots_rank_by_transaction_age_then_pid():
    forest = lock_forest(
        snapshot(
            Session(pid=10, xact_age_seconds=5.0),
            waits(11, 10),
            Session(pid=20, xact_age_seconds=50.0),
            waits(21, 20),
            Session(pid=30, xact_age_seconds=5.0),
            waits(31, 30),
        )
    )
    assert [t.pid for t in forest] == [20, 10, 30]


def test_waiter_on_two_roots_stands_under_both():
    forest = lock_forest(
        snapshot(Session(pid=10), Session(pid=20), waits(30, 10, 20), waits(11, 10))
    )
    assert [shape(t) for t in forest] == [
        (10, ((11, ()), (30, ()))),
        (20, ((30, ()),)),
    ]


def test_deadlock_cycle_roots_at_lowest_pid_and_covers_every_waiter():
    # 40 -> 30 -> 20 -> 40 (a cycle), 50 waits on 30 from outside the cycle.
    snap = snapshot(waits(20, 40), waits(30, 20), waits(40, 30), waits(50, 30))
    forest = lock_forest(snap)
    assert [t.pid for t in forest] == [20]
    assert shape(forest[0]) == (20, ((30, ((40, ()), (50, ()))),))
    assert every_pid(forest[0]) == {20, 30, 40, 50}


def test_waiter_behind_a_cycle_is_not_a_root_even_with_the_lowest_pid():
    snap = snapshot(waits(1, 2), waits(2, 3), waits(3, 2))
    forest = lock_forest(snap)
    assert [shape(t) for t in forest] == [(2, ((1, ()), (3, ())))]
    assert root_blockers(snap, [1]) == (2,)


def test_two_party_deadlock():
    forest = lock_forest(snapshot(waits(8, 9), waits(9, 8)))
    assert [shape(t) for t in forest] == [(8, ((9, ()),))]


def test_cycle_downstream_of_a_cycle_hangs_below_it():
    # 10 <-> 11 is a deadlock; 20 <-> 21 also wait on each other, and 20 on 11.
    snap = snapshot(waits(10, 11), waits(11, 10), waits(20, 21, 11), waits(21, 20))
    forest = lock_forest(snap)
    assert [t.pid for t in forest] == [10]
    assert every_pid(forest[0]) == {10, 11, 20, 21}


def test_cycle_behind_an_ordinary_root_needs_no_extra_tree():
    snap = snapshot(Session(pid=5), waits(6, 5, 7), waits(7, 6))
    forest = lock_forest(snap)
    assert [t.pid for t in forest] == [5]
    assert every_pid(forest[0]) == {5, 6, 7}


def test_every_waiting_pid_is_covered():
    snap = snapshot(
        Session(pid=1),
        waits(2, 1),
        waits(3, 2, 5),
        waits(4, 3),
        waits(5, 4),
        waits(6, 6),
        waits(7, 6),
    )
    covered = set().union(*(every_pid(t) for t in lock_forest(snap)))
    assert covered == {1, 2, 3, 4, 5, 6, 7}


def test_blocker_absent_from_the_snapshot():
    # 900 ended (or is hidden) between reading sessions and reading locks.
    snap = snapshot(
        waits(10, 900),  # waits on a ghost and blocks nobody: no tree
        waits(20, 900),  # waits on a ghost but blocks 21: a root
        waits(21, 20),
        Session(pid=30),
    )
    forest = lock_forest(snap)
    assert [shape(t) for t in forest] == [(20, ((21, ()),))]
    assert root_blockers(snap, [10]) == ()
    assert root_blockers(snap, [21]) == (20,)


def test_root_blockers_from_the_middle_of_chains():
    snap = snapshot(
        Session(pid=10),
        waits(20, 10),
        waits(30, 20),
        waits(40, 30),
        Session(pid=50),
        waits(60, 50),
        waits(70, 10, 50),
        Session(pid=99),
    )
    assert root_blockers(snap, [30]) == (10,)
    assert root_blockers(snap, [20, 40]) == (10,)
    assert root_blockers(snap, [10]) == (10,)
    assert root_blockers(snap, [60]) == (50,)
    # Forest order: 10 blocks four sessions, 50 two.
    assert root_blockers(snap, [70]) == (10, 50)
    assert root_blockers(snap, [60, 30]) == (10, 50)
    assert root_blockers(snap, [99]) == ()
    assert root_blockers(snap, [12345]) == ()
    assert root_blockers(snap, iter([40])) == (10,)


def test_wait_node_descendants_are_transitive():
    forest = lock_forest(snapshot(Session(pid=1), waits(2, 1), waits(3, 2), waits(4, 2)))
    assert forest[0].descendants() == {2, 3, 4}
    assert forest[0].waiters[0].descendants() == {3, 4}
    assert forest[0].waiters[0].waiters[0].descendants() == frozenset()
