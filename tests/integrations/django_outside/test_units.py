"""``fresh_connections()`` around the steps of a long script, and its ``retry``."""

from __future__ import annotations

from tests.integrations.django_outside.conftest import App

STEPS = 10


def sessions_between_steps(app: App, mode: str) -> list[int]:
    child = app.start("script", SW_OUT_MODE=mode)
    held = []
    for step in range(STEPS):
        assert child.expect("step")["step"] == step
        held.append(len(app.sessions() if mode == "plain" else app.sessions_once_gone()))
        child.go()
    child.expect("done")
    child.close()
    assert app.rows(2000, 2000 + STEPS) == [2000 + step for step in range(STEPS)]
    return held


def check_script(app: App) -> None:
    # The control: plain Django holds its connection for the whole script.
    assert sessions_between_steps(app, "plain") == [1] * STEPS
    app.exec_in("DELETE FROM sw_notes WHERE id >= 2000")
    assert sessions_between_steps(app, "ours") == [0] * STEPS


def test_script_holds_no_session_between_steps_on_postgresql(pg_app: App) -> None:
    check_script(pg_app)


def test_script_holds_no_session_between_steps_on_mariadb(mysql_app: App) -> None:
    check_script(mysql_app)


def check_age(app: App) -> None:
    child = app.start("age", SW_OUT_MAX_AGE="1")
    first, second, third = child.expect("pids")["pids"]
    child.close()
    assert first == second  # kept while healthy and young
    assert third != first  # replaced once past CONN_MAX_AGE


def test_keep_replaces_a_connection_past_conn_max_age_on_postgresql(pg_app: App) -> None:
    check_age(pg_app)


def test_keep_replaces_a_connection_past_conn_max_age_on_mariadb(mysql_app: App) -> None:
    check_age(mysql_app)


def check_retry(app: App) -> None:
    child = app.start("retry")
    pid = child.expect("inserted")["pid"]
    app.terminate(pid)  # inside the atomic() block, after its INSERT
    child.go()
    done = child.expect("done")

    assert done["ok"], done
    assert done["attempts"] == 2
    assert app.rows(3000, 3001) == [3000]  # the whole block ran again, and once
    assert app.sessions_once_gone() == set()


def test_retry_reruns_the_whole_block_on_postgresql(pg_app: App) -> None:
    check_retry(pg_app)


def test_retry_reruns_the_whole_block_on_mariadb(mysql_app: App) -> None:
    check_retry(mysql_app)


SLOW_COMMIT = """
CREATE TABLE sw_slow (id int NOT NULL);
CREATE FUNCTION sw_slow_commit() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER sw_slow_commit AFTER INSERT ON sw_slow
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sw_slow_commit();
"""


def test_an_interrupted_commit_is_not_rerun_on_postgresql(pg_app: App) -> None:
    app = pg_app
    # A deferred trigger makes COMMIT itself run for 30 s, so it can be interrupted.
    app.exec_in(SLOW_COMMIT)
    child = app.start("commit")
    pid = child.expect("inserted")["pid"]
    app.wait_until(
        f"{pid} runs COMMIT",
        lambda: bool(
            app.server.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active' "
                "AND query = 'COMMIT'",
                (pid,),
            )
        ),
    )
    app.terminate(pid)
    done = child.expect("done")

    assert done["outcome"] == "unknown", done
    assert done["attempts"] == 1
    assert done["cause"] in ("SessionTerminated", "ConnectionLost")
    assert "during COMMIT" in done["message"]
    assert app.exec_in("SELECT count(*) FROM sw_slow") == [(0,)]
