"""``sessionward.django.TestRunner`` against Django's own runner, on real servers.

Every case first runs Django's ``DiscoverRunner`` on the same setup, so the
test shows the problem is real before showing it gone.
"""

from __future__ import annotations

import sys

import pytest

from tests.integrations.django_project import (
    DJANGO_RUNNER,
    PROJECT_DIR,
    SESSIONWARD_RUNNER,
    DjangoProject,
    clean_environ,
    run,
)


def ended_line(project: DjangoProject, pid: int, database: str | None = None) -> str:
    return f"sessionward: ended leftover session {pid} on {database or project.test_name!r}"


def assert_main_session_survived(project: DjangoProject, main) -> None:
    assert project.alive(main.pid)
    assert [tuple(row) for row in main.run("SELECT 1")] == [(1,)]


@pytest.mark.parametrize("in_transaction", [False, True], ids=["idle", "idle-in-transaction"])
def test_leftover_session_on_the_test_database(django_project, victims, in_transaction):
    project = django_project
    main = project.hold(victims, project.name)
    project.create_test_database()
    leftover = project.hold(victims, project.test_name, in_transaction=in_transaction)

    # The control: Django's own runner on the same setup.  On PostgreSQL a
    # session in a transaction blocks DROP DATABASE exactly as an idle one does,
    # after the same 5 s wait, so that control runs once, for the idle case.
    if project.engine == "postgresql" and not in_transaction:
        control = project.manage("test", "--noinput", runner=DJANGO_RUNNER)
        assert control.code != 0
        assert "being accessed by other users" in control.output
        assert project.alive(leftover.pid)
    elif project.engine == "mysql" and in_transaction:
        control = project.manage("test", "--noinput", runner=DJANGO_RUNNER)
        # DROP DATABASE waits for the metadata lock of the open transaction.
        assert control.code != 0
        assert "Lock wait timeout exceeded" in control.output
        assert project.alive(leftover.pid)
    elif project.engine == "mysql":
        control = project.manage("test", "--noinput", runner=DJANGO_RUNNER)
        # MariaDB drops a database under an idle session: the run passes, and the
        # session stays connected to a database that no longer exists.
        assert control.code == 0, control.output
        assert project.alive(leftover.pid)
        project.create_test_database()
        leftover = project.hold(victims, project.test_name)

    ours = project.manage("test", "--noinput")

    assert ours.code == 0, ours.output
    assert "Ran 2 tests" in ours.err
    assert ended_line(project, leftover.pid) in ours.out
    assert not project.alive(leftover.pid)
    assert project.existing_test_databases() == set()
    assert_main_session_survived(project, main)


def test_parallel_clones_leave_no_database_or_session(django_project, victims):
    project = django_project
    main = project.hold(victims, project.name)
    clone = project.create_test_database(f"{project.test_name}_1")
    leftover = project.hold(victims, clone, in_transaction=True)

    ours = project.manage("test", "--noinput", "--parallel", "2")

    assert ours.code == 0, ours.output
    assert "Ran 2 tests" in ours.err
    assert ended_line(project, leftover.pid, clone) in ours.out
    assert project.existing_test_databases() == set()
    assert project.sessions_on(project.test_databases) == set()
    assert_main_session_survived(project, main)


def test_keepdb_with_a_leftover_session(django_project, victims):
    project = django_project
    main = project.hold(victims, project.name)
    project.create_test_database()
    leftover = project.hold(victims, project.test_name)

    # With Django's own runner this fails on PostgreSQL: the clones are copies of
    # the kept database (CREATE DATABASE … TEMPLATE), refused while it has sessions.
    ours = project.manage("test", "--noinput", "--keepdb", "--parallel", "2")

    assert ours.code == 0, ours.output
    assert "Ran 2 tests" in ours.err
    assert ended_line(project, leftover.pid) in ours.out
    assert not project.alive(leftover.pid)
    assert project.test_name in project.existing_test_databases()
    assert project.sessions_on(project.test_databases) == set()
    assert_main_session_survived(project, main)


@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_an_unreachable_server_is_one_line_then_djangos_own_error(engine):
    env = clean_environ(
        SW_DJANGO_ENGINE=engine,
        SW_DJANGO_NAME="sw_unreachable",
        SW_DJANGO_HOST="127.0.0.1",
        SW_DJANGO_PORT="1",  # nothing listens there
        SW_DJANGO_USER="nobody",
        SW_DJANGO_PASSWORD="s3cret",
        SW_DJANGO_TEST_RUNNER=SESSIONWARD_RUNNER,
        DJANGO_SETTINGS_MODULE="swproject.settings",
    )

    result = run([sys.executable, "manage.py", "test", "--noinput"], env=env, cwd=PROJECT_DIR)

    assert result.code != 0
    ours = [line for line in result.output.splitlines() if "sessionward:" in line]
    assert len(ours) == 1, result.output
    assert ours[0].startswith("sessionward: ")
    assert "connection refused" in ours[0].lower()
    assert "s3cret" not in ours[0]
    # Django's own error follows, as without sessionward.
    assert "django.db.utils.OperationalError" in result.err
