"""``classify`` and ``translate`` on errors shaped like each driver's, without a server.

The errors here are stand-ins with the attributes and module names the real
drivers use; every claim about what a server sends is asserted live in
``tests/integrations/errors``.
"""

import pickle
import subprocess
import sys
import textwrap

import pytest

import sessionward.errors
from sessionward.core._classify import MYSQL_CODES, PG_CODES
from sessionward.core._errors import __doc__ as core_tree
from sessionward.errors import (
    ConnectionLost,
    Deadlock,
    IdleInTransactionTimeout,
    IdleSessionTimeout,
    LockTimeout,
    QueryCanceled,
    SerializationFailure,
    ServerShuttingDown,
    SessionEnded,
    SessionTerminated,
    SessionwardError,
    StatementInterrupted,
    StatementTimeout,
    TransactionTimeout,
    classify,
    translate,
)

ENDINGS = [
    StatementInterrupted,
    QueryCanceled,
    StatementTimeout,
    LockTimeout,
    Deadlock,
    SerializationFailure,
    SessionEnded,
    SessionTerminated,
    IdleInTransactionTimeout,
    IdleSessionTimeout,
    TransactionTimeout,
    ServerShuttingDown,
    ConnectionLost,
]


def _error_class(module: str, name: str, base: type = Exception) -> type:
    return type(name, (base,), {"__module__": module})


# Stand-ins for the drivers' classes: what classify looks at is the module and the MRO.
PsycopgOperational = _error_class("psycopg", "OperationalError")
PsycopgProgramming = _error_class("psycopg", "ProgrammingError")
Psycopg2Operational = _error_class("psycopg2", "OperationalError")
Psycopg2Interface = _error_class("psycopg2", "InterfaceError")
PyMySQLOperational = _error_class("pymysql.err", "OperationalError")
PyMySQLInterface = _error_class("pymysql.err", "InterfaceError")
PyMySQLIntegrity = _error_class("pymysql.err", "IntegrityError")


class SQLAlchemyOperational(Exception):
    __module__ = "sqlalchemy.exc"

    def __init__(self, orig: BaseException, detail: list[str] | None = None) -> None:
        super().__init__(f"({type(orig).__name__}) {orig}")
        self.orig = orig
        self.detail = detail or []


DjangoOperational = _error_class("django.db.utils", "OperationalError")


class Diag:
    def __init__(self, message_primary: str | None) -> None:
        self.message_primary = message_primary


def psycopg_error(sqlstate: str | None, text: str = "", pgconn: object = None) -> Exception:
    error = PsycopgOperational(text)
    error.sqlstate = sqlstate  # type: ignore[attr-defined]
    error.diag = Diag(text or None)  # type: ignore[attr-defined]
    error.pgconn = pgconn  # type: ignore[attr-defined]
    return error


class Info:
    def __init__(self, error_message: str) -> None:
        self.error_message = error_message


class Connection:
    def __init__(self, error_message: str) -> None:
        self.info = Info(error_message)


class Cursor:
    def __init__(self, error_message: str) -> None:
        self.connection = Connection(error_message)


def psycopg2_lost(server_line: str, *, cursor: bool = True) -> Exception:
    """What psycopg2 raises when the server closes the session: no pgcode."""
    libpq = "server closed the connection unexpectedly\n\tThis probably means ..."
    error = Psycopg2Operational(libpq)
    error.pgcode = None  # type: ignore[attr-defined]
    error.pgerror = libpq  # type: ignore[attr-defined]
    error.cursor = Cursor(f"{server_line}\n{libpq}") if cursor else None  # type: ignore[attr-defined]
    return error


def psycopg2_login_failure(text: str) -> Exception:
    error = Psycopg2Operational(text)
    error.pgcode = None  # type: ignore[attr-defined]
    error.pgerror = None  # type: ignore[attr-defined]
    error.cursor = None  # type: ignore[attr-defined]
    return error


class FailedLogin:
    """psycopg 3 attaches the failed connection, which never got a backend."""

    backend_pid = 0


# --------------------------------------------------------------------------- by code


@pytest.mark.parametrize(("sqlstate", "expected"), sorted(PG_CODES.items()))
def test_every_postgresql_code(sqlstate, expected):
    if sqlstate == "57014":
        return  # told apart by text: see below
    assert classify(psycopg_error(sqlstate)) is expected


@pytest.mark.parametrize("sqlstate", ["08000", "08003", "08006", "08P01"])
def test_connection_exception_class_is_lost(sqlstate):
    assert classify(psycopg_error(sqlstate)) is ConnectionLost


@pytest.mark.parametrize("sqlstate", ["23505", "42P01", "25P02", "XX000"])
def test_other_postgresql_errors_are_not_endings(sqlstate):
    assert classify(psycopg_error(sqlstate)) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("canceling statement due to statement timeout", StatementTimeout),
        ("canceling statement due to user request", QueryCanceled),
        # A non-English lc_messages: only the parent can be promised.
        ("Abbruch der Anweisung wegen Zeitüberschreitung der Anweisung", StatementInterrupted),
        ("annulation de la requête à cause du délai écoulé pour l'exécution", StatementInterrupted),
    ],
)
def test_57014_by_its_english_text(text, expected):
    assert classify(psycopg_error("57014", text)) is expected


def test_psycopg2_code_is_read_from_pgcode():
    error = Psycopg2Operational("canceling statement due to user request")
    error.pgcode = "57014"  # type: ignore[attr-defined]
    error.diag = Diag("canceling statement due to user request")  # type: ignore[attr-defined]
    assert classify(error) is QueryCanceled


@pytest.mark.parametrize(("errno", "expected"), sorted(MYSQL_CODES.items()))
def test_every_mysql_code(errno, expected):
    assert classify(PyMySQLOperational(errno, "text")) is expected


def test_mysql_sqlstate_is_not_read_as_postgresql():
    """PyMySQL errors carry a SQLSTATE too ("70100" for 1969): the errno decides."""
    error = PyMySQLOperational(
        1969, "Query execution was interrupted (max_statement_time exceeded)"
    )
    error.sqlstate = "70100"  # type: ignore[attr-defined]
    assert classify(error) is StatementTimeout
    duplicate = PyMySQLIntegrity(1062, "Duplicate entry")
    duplicate.sqlstate = "23000"  # type: ignore[attr-defined]
    assert classify(duplicate) is None


def test_mysql_connection_already_closed():
    assert classify(PyMySQLInterface(0, "")) is ConnectionLost
    assert classify(PyMySQLOperational(0, "")) is None


def test_errno_like_arguments_of_other_libraries_are_ignored():
    assert classify(ValueError(2013, "not MySQL")) is None
    assert classify(ConnectionResetError(104, "reset")) is None


# --------------------------------------------------------------------------- libpq without a code


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("FATAL:  terminating connection due to administrator command", SessionTerminated),
        (
            "FATAL:  terminating connection due to idle-in-transaction timeout",
            IdleInTransactionTimeout,
        ),
        ("FATAL:  terminating connection due to idle-session timeout", IdleSessionTimeout),
        ("FATAL:  terminating connection due to transaction timeout", TransactionTimeout),
        ("FATAL:  Verbindung wird abgebrochen aufgrund von Verwaltungsbefehl", ConnectionLost),
        ("", ConnectionLost),
    ],
)
def test_psycopg2_server_line_decides(line, expected):
    assert classify(psycopg2_lost(line)) is expected


def test_psycopg2_without_its_cursor_is_lost():
    """``commit()`` failures carry no cursor, so the server's line cannot be read."""
    error = psycopg2_lost(
        "FATAL:  terminating connection due to administrator command", cursor=False
    )
    assert classify(error) is ConnectionLost


def test_psycopg2_server_line_kept_by_sqlalchemy():
    """After SQLAlchemy closed the connection, ``classify_errors`` left the line in ``detail``."""
    error = psycopg2_lost("", cursor=False)
    wrapped = SQLAlchemyOperational(
        error, ["server said: FATAL:  terminating connection due to administrator command"]
    )
    assert classify(wrapped) is SessionTerminated
    assert classify(SQLAlchemyOperational(error)) is ConnectionLost


def test_psycopg2_closed_connection():
    assert classify(Psycopg2Interface("connection already closed")) is ConnectionLost


def test_psycopg_without_a_code_mid_session_is_lost():
    error = psycopg_error(None, "consuming input failed: server closed the connection unexpectedly")
    assert classify(error) is ConnectionLost
    assert classify(psycopg_error(None, "the connection is closed")) is ConnectionLost


def test_psycopg_other_errors_without_a_code_are_not_endings():
    assert classify(PsycopgProgramming("the query has 1 placeholder but 0 parameters")) is None


@pytest.mark.parametrize(
    "fatal",
    [
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is not yet accepting connections",
        "the database system is in recovery mode",
    ],
)
def test_login_refused_while_starting_or_stopping(fatal):
    text = f'connection failed: connection to server at "db", port 5432 failed: FATAL:  {fatal}'
    assert classify(psycopg_error(None, text, pgconn=FailedLogin())) is ServerShuttingDown
    assert classify(psycopg2_login_failure(text)) is ServerShuttingDown


@pytest.mark.parametrize(
    "text",
    [
        'connection to server at "db", port 5432 failed: Connection refused',
        'connection to server at "db", port 5432 failed: FATAL:  password authentication failed',
        # A login refused with a session-ending text is still only a failed login.
        "FATAL:  terminating connection due to administrator command",
    ],
)
def test_other_failed_logins_are_not_endings(text):
    assert classify(psycopg_error(None, text, pgconn=FailedLogin())) is None
    assert classify(psycopg2_login_failure(text)) is None


# --------------------------------------------------------------------------- wrappers


def test_sqlalchemy_and_django_wrappers_are_unwrapped():
    original = PyMySQLOperational(2013, "Lost connection to MySQL server during query")
    assert classify(SQLAlchemyOperational(original)) is ConnectionLost
    django = DjangoOperational(*original.args)
    django.__cause__ = original
    assert classify(django) is ConnectionLost
    # A Django error around an SQLAlchemy one, should anyone stack them.
    outer = DjangoOperational("outer")
    outer.__cause__ = SQLAlchemyOperational(original)
    assert classify(outer) is ConnectionLost


def test_a_django_error_without_a_cause_is_not_an_ending():
    assert classify(DjangoOperational("no cause")) is None


def test_a_cause_is_not_followed_outside_the_wrappers():
    error = RuntimeError("ours")
    error.__cause__ = PyMySQLOperational(2013, "lost")
    assert classify(error) is None


def test_our_own_endings_classify_as_themselves():
    assert classify(LockTimeout("waited", code="55P03")) is LockTimeout


# --------------------------------------------------------------------------- translate


def test_translate_reraises_ours_from_the_original():
    original = psycopg_error("55P03", "canceling statement due to lock timeout")
    with pytest.raises(LockTimeout) as raised, translate():
        raise original
    assert raised.value.__cause__ is original
    assert raised.value.code == "55P03"
    assert str(raised.value) == "canceling statement due to lock timeout [55P03]"


def test_translate_names_the_server_line_psycopg2_lost():
    with pytest.raises(SessionTerminated, match="administrator command") as raised, translate():
        raise psycopg2_lost("FATAL:  terminating connection due to administrator command")
    assert raised.value.code is None


def test_translate_mysql_message():
    with pytest.raises(QueryCanceled) as raised, translate():
        raise PyMySQLOperational(1317, "Query execution was interrupted")
    assert str(raised.value) == "Query execution was interrupted [1317]"
    assert raised.value.code == "1317"


def test_translate_lets_everything_else_through():
    error = ValueError("unrelated")
    with pytest.raises(ValueError, match="unrelated") as raised, translate():
        raise error
    assert raised.value is error
    ours = SessionTerminated("already ours", code="57P01")
    with pytest.raises(SessionTerminated) as raised_ours, translate():
        raise ours
    assert raised_ours.value is ours
    with pytest.raises(KeyboardInterrupt), translate():
        raise KeyboardInterrupt


def test_translate_is_a_decorator_too():
    @translate()
    def work() -> None:
        raise PyMySQLOperational(1205, "Lock wait timeout exceeded")

    with pytest.raises(LockTimeout):
        work()


# --------------------------------------------------------------------------- the classes


@pytest.mark.parametrize(
    ("cls", "usable", "retry_safe"),
    [
        (StatementInterrupted, True, True),
        (QueryCanceled, True, True),
        (StatementTimeout, True, True),
        (LockTimeout, True, True),
        (Deadlock, True, True),
        (SerializationFailure, True, True),
        (SessionEnded, False, True),
        (SessionTerminated, False, True),
        (IdleInTransactionTimeout, False, True),
        (IdleSessionTimeout, False, True),
        (TransactionTimeout, False, True),
        (ServerShuttingDown, False, True),
        (ConnectionLost, False, False),
    ],
)
def test_facts_on_each_class(cls, usable, retry_safe):
    assert cls.connection_usable is usable
    assert cls.transaction_retry_safe is retry_safe
    assert issubclass(cls, SessionwardError)


@pytest.mark.parametrize("cls", ENDINGS, ids=lambda c: c.__name__)
def test_endings_pickle_with_their_code(cls):
    error = cls("canceling statement due to statement timeout [57014]", code="57014")
    error.__cause__ = psycopg_error("57014")
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        copy = pickle.loads(pickle.dumps(error, protocol=protocol))
        assert type(copy) is cls
        assert str(copy) == str(error)
        assert copy.code == "57014"
    assert cls("no code").code is None


def test_statement_and_session_endings_are_separate_branches():
    assert not issubclass(SessionEnded, StatementInterrupted)
    assert not issubclass(StatementInterrupted, SessionEnded)


@pytest.mark.parametrize("cls", ENDINGS, ids=lambda c: c.__name__)
def test_the_trees_in_the_docstrings_name_every_class(cls):
    assert cls.__name__ in sessionward.errors.__doc__
    assert cls.__name__ in core_tree


def test_classify_imports_no_driver():
    """Importing and using ``sessionward.errors`` must work with no driver installed."""
    code = textwrap.dedent(
        """
        import sys
        for name in ("psycopg", "psycopg2", "pymysql", "MySQLdb", "sqlalchemy", "django"):
            sys.modules[name] = None
        from sessionward.errors import classify, translate
        assert classify(ValueError("x")) is None
        with translate():
            pass
        print("ok")
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert completed.stdout.strip() == "ok", completed.stderr
