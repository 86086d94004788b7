"""``manage.py sessions`` and ``manage.py endsessions`` on real servers."""

from __future__ import annotations

import json

from tests.fix_servers import ABSENT_PID


def test_sessions_lists_and_endsessions_ends_exactly_the_match(django_project, victims):
    project = django_project
    other = project.server.create_database()
    main = project.hold(victims, project.name)
    # Not a superuser: their sessions are protected, as in the CLI.
    target = victims(project.server, database=other, user=project.server.create_user())

    listed = project.manage("sessions", "--database-name", other, "--json")
    assert listed.code == 0, listed.output
    assert [s["pid"] for s in json.loads(listed.out)["sessions"]] == [target.pid]

    table = project.manage("sessions", "--database-name", other)
    assert table.code == 0, table.output
    assert str(target.pid) in table.out
    assert "1 session (1 idle) on" in table.out

    dry = project.manage("endsessions", "--database-name", other, "--dry-run")
    assert dry.code == 0, dry.output
    assert "would end" in dry.out
    assert project.alive(target.pid)

    ended = project.manage("endsessions", "--database-name", other, "--yes", "--json")
    assert ended.code == 0, ended.output
    assert [(r["pid"], r["outcome"]) for r in json.loads(ended.out)] == [(target.pid, "ended")]
    assert not project.alive(target.pid)
    assert project.alive(main.pid)
    assert [tuple(row) for row in main.run("SELECT 1")] == [(1,)]


def test_endsessions_refuses_without_a_choice_and_fails_when_not_ended(django_project):
    project = django_project

    unchosen = project.manage("endsessions")
    assert unchosen.code == 2
    assert unchosen.err.strip().splitlines() == [
        "CommandError: no session chosen: give pids, a filter such as --database-name, "
        "or --all-matching to terminate every client session"
    ]

    absent = project.manage("endsessions", str(ABSENT_PID))
    assert absent.code == 1
    assert "already gone" in absent.out
    assert absent.err.strip().splitlines() == [
        "CommandError: 1 of 1 sessions not ended (1 already gone)"
    ]
