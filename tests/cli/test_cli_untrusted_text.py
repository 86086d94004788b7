"""Text any database user writes (queries, application names) cannot drive the terminal.

Human output shows control characters escaped and rich markup as typed; JSON and CSV carry
the server's text exactly. Checked on each real server.
"""

from __future__ import annotations

import csv
import io
import json

from sessionward.interfaces._text import printable
from tests.cli.test_cli_sessions import make_table
from tests.fix_servers import Server, wait_until

#: Sets the window title, rings the bell, clears the screen, then tries rich markup.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J[bold]x[/bold]"
ESCAPED = printable(HOSTILE)  # \e]0;pwned\x07\e[2J[bold]x[/bold]
#: Short enough for the APP column: a bell, then markup.
HOSTILE_APP = "\x07[bold]x[/bold]"


def assert_harmless(text: str) -> None:
    assert "\x1b" not in text
    assert "\x07" not in text


def _running(server: Server, victims, database: str, user: str):
    """A session running a long statement whose text carries HOSTILE."""
    victim = victims(server, database=database, user=user, application=HOSTILE_APP)
    sleep = "pg_sleep(30)" if server.engine == "postgresql" else "SLEEP(30)"
    query = f"SELECT {sleep}, '{HOSTILE}' AS t"
    victim.start(query)
    return victim, query


def _server_application(server: Server, pid: int) -> str | None:
    if server.engine != "postgresql":
        return None  # MariaDB without performance_schema shows no application names
    rows = server.execute("SELECT application_name FROM pg_stat_activity WHERE pid = %s", (pid,))
    return str(rows[0][0])


def test_ls_escapes_server_text_and_json_csv_keep_it(server, victims, run_cli) -> None:
    database, user = server.create_database(), server.create_user()
    victim, query = _running(server, victims, database, user)

    def listed() -> dict:
        result = run_cli("ls", "--dsn", server.url, "--user", user, "--json")
        assert result.code == 0, result.err
        rows = json.loads(result.out)["sessions"]
        return rows[0] if rows and rows[0]["query"] == query else {}

    row = wait_until(listed, what="the hostile statement running")
    assert row["pid"] == victim.pid
    assert row["query"] == query  # exact, control characters included
    assert row["application"] == _server_application(server, victim.pid)

    result = run_cli("ls", "--dsn", server.url, "--user", user)
    assert result.code == 0, result.err
    assert_harmless(result.out + result.err)
    assert ESCAPED in result.out
    if server.engine == "postgresql":
        # PostgreSQL keeps only printable ASCII in application_name; the markup survives
        # that and must be shown as typed, not read by rich.
        assert "[bold]x[/bold]" in row["application"]
        assert row["application"] in result.out

    result = run_cli("ls", "--dsn", server.url, "--user", user, "--csv")
    assert result.code == 0, result.err
    (csv_row,) = list(csv.DictReader(io.StringIO(result.out)))
    assert csv_row["query"] == query


def test_blockers_tree_escapes_server_text(server, victims, run_cli) -> None:
    database, user = server.create_database(), server.create_user()
    make_table(server, database)
    holder = victims(server, database=database, user=user, application=f"holder {HOSTILE}")
    holder.run("BEGIN")
    holder.run("UPDATE accounts SET balance = 0 WHERE id = 1")
    waiter = victims(server, database=database, user=user)
    waiting = f"UPDATE accounts SET balance = 1 WHERE id = 1 AND '{HOSTILE}' <> ''"
    waiter.start(waiting)

    def forest() -> list:
        result = run_cli("blockers", "--dsn", server.url, "--json")
        assert result.code == 0, result.err
        return [t for t in json.loads(result.out) if t["pid"] == holder.pid]

    (tree,) = wait_until(forest, what="the waiter blocked")
    assert tree["waiters"][0]["query"] == waiting

    result = run_cli("blockers", "--dsn", server.url)
    assert result.code == 0, result.err
    assert_harmless(result.out + result.err)
    assert ESCAPED in result.out
    if server.engine == "postgresql":
        assert f"app {_server_application(server, holder.pid)}" in result.out
    holder.run("ROLLBACK")
    waiter.result()


def test_outcome_and_dropdb_tables_escape_server_text(server, victims, run_cli) -> None:
    database, user = server.create_database(), server.create_user()
    victim, query = _running(server, victims, database, user)

    def running() -> bool:
        result = run_cli("ls", "--dsn", server.url, "--user", user, "--json")
        return any(s["query"] == query for s in json.loads(result.out)["sessions"])

    wait_until(running, what="the hostile statement running")

    result = run_cli("terminate", "--dsn", server.url, "--user", user, "--dry-run")
    assert result.code == 0, result.err
    assert_harmless(result.out + result.err)
    assert "would end" in result.out
    assert ESCAPED in result.out

    result = run_cli("terminate", "--dsn", server.url, "--user", user, "--dry-run", "--json")
    assert json.loads(result.out)[0]["query"] == query

    # Without --force, dropdb lists the sessions that keep the database, and ends none.
    result = run_cli("dropdb", database, "--dsn", server.url)
    assert result.code == 1
    assert_harmless(result.out + result.err)
    assert ESCAPED in result.out
    assert server.database_exists(database)
    assert victim.pid in {s["pid"] for s in _sessions(run_cli, server, user)}


def _sessions(run_cli, server: Server, user: str) -> list[dict]:
    result = run_cli("ls", "--dsn", server.url, "--user", user, "--json")
    return list(json.loads(result.out)["sessions"])


def test_a_hostile_database_name_is_escaped_in_every_line(pg: Server, run_cli) -> None:
    name = "sw_\x1b[2J[red]evil"
    result = run_cli("dropdb", name, "--dsn", pg.url, "--if-exists")
    assert result.code == 0, result.err
    assert_harmless(result.out + result.err)
    assert result.out.strip() == f"database {printable(name)} does not exist; nothing to drop"

    result = run_cli("dropdb", name, "--dsn", pg.url)
    assert result.code != 0
    assert_harmless(result.out + result.err)
    assert "[red]evil" in result.err  # the name, escaped (here by the message's quoting)
