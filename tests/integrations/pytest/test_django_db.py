"""The plugin with pytest-django: leftover sessions on the test database, real runs."""

from __future__ import annotations

import textwrap

INI = """\
[pytest]
DJANGO_SETTINGS_MODULE = swproject.settings
"""

TESTS = '''\
import pytest
from django.db import connection

from notes.models import Note

KEPT = []


@pytest.mark.django_db
@pytest.mark.sessionward_no_leaks
def test_djangos_own_connection_is_not_a_leak():
    Note.objects.create(text="kept open by Django, not leaked")
    assert Note.objects.count() == 1


@pytest.mark.django_db
def test_leaves_a_connection_on_the_test_database():
    """Like a thread or a pool the test forgot: it holds the test database at teardown."""
    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        import psycopg

        conn = psycopg.connect(
            host=settings["HOST"], port=settings["PORT"] or None, user=settings["USER"],
            password=settings["PASSWORD"] or None, dbname=settings["NAME"], autocommit=True,
        )
        cursor = conn.cursor()
    else:
        import pymysql

        conn = pymysql.connect(
            host=settings["HOST"], port=int(settings["PORT"] or 3306), user=settings["USER"],
            password=settings["PASSWORD"], database=settings["NAME"], autocommit=True,
        )
        cursor = conn.cursor()
    cursor.execute("BEGIN")
    cursor.execute("SELECT count(*) FROM notes_note")
    KEPT.append(conn)
'''


def test_create_db_with_a_leftover_session(django_project, victims, tmp_path):
    project = django_project
    ini = tmp_path / "pytest.ini"
    ini.write_text(INI)
    (tmp_path / "test_with_db.py").write_text(textwrap.dedent(TESTS))
    main = project.hold(victims, project.name)
    project.create_test_database()
    leftover = project.hold(victims, project.test_name, in_transaction=True)
    args = ("--create-db", "--rootdir", str(tmp_path), str(tmp_path / "test_with_db.py"))

    without = project.pytest(*args, ini=ini)

    # pytest-django's own setup: Django's DROP DATABASE fails and exits, every
    # test that needs the database errors.
    assert without.code != 0
    assert "Got an error recreating the test database" in without.out
    if project.engine == "postgresql":
        assert "being accessed by other users" in without.out
    else:
        assert "Lock wait timeout exceeded" in without.out
    assert "errors" in without.out.splitlines()[-1]
    assert "sessionward:" not in without.output  # the disabled plugin says and does nothing
    assert project.alive(leftover.pid)

    with_plugin = project.pytest(
        "--sessionward", "-W", "error::pytest.PytestWarning", *args, ini=ini
    )

    assert with_plugin.code == 0, with_plugin.output
    assert "2 passed" in with_plugin.out
    lines = [line for line in with_plugin.out.splitlines() if "sessionward: ended" in line]
    # One before the database was created, one (the test's own) before it was dropped.
    assert len(lines) == 2, with_plugin.out
    assert f"leftover session {leftover.pid} on {project.test_name!r}" in lines[0]
    assert f"on {project.test_name!r}" in lines[1]
    assert not project.alive(leftover.pid)
    assert project.existing_test_databases() == set()
    assert project.alive(main.pid)


def test_reuse_db_keeps_sessions_alone(django_project, victims, tmp_path):
    """``--reuse-db`` keeps the test database, so nothing needs ending: nothing is."""
    project = django_project
    ini = tmp_path / "pytest.ini"
    ini.write_text(INI)
    (tmp_path / "test_db.py").write_text(
        textwrap.dedent("""\
            import pytest
            from notes.models import Note


            @pytest.mark.django_db
            def test_uses_the_database():
                assert Note.objects.count() == 0
        """)
    )
    args = ("--sessionward", "--rootdir", str(tmp_path), str(tmp_path / "test_db.py"))
    created = project.pytest("--reuse-db", *args, ini=ini)
    assert created.code == 0, created.output
    leftover = project.hold(victims, project.test_name)

    reused = project.pytest("--reuse-db", *args, ini=ini)

    assert reused.code == 0, reused.output
    assert "sessionward:" not in reused.output
    assert project.alive(leftover.pid)
