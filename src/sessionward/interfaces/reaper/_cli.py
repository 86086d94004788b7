"""The ``reap`` command and the ``policy check`` / ``policy test`` / ``policy example`` commands."""

from __future__ import annotations

import contextlib
import json
import signal
import sys

import click

from ...core import (
    ConfigurationError,
    Policy,
    Session,
    SessionwardError,
    Snapshot,
    decide,
    format_age,
    load_snapshot,
    parse_policy,
)
from .._files import MAX_POLICY_BYTES, MAX_SNAPSHOT_BYTES, read_text_file
from .._params import DURATION
from .._text import printable
from ._audit import AuditFanOut, AuditLog, AuditSink
from ._audit_table import DEFAULT_TABLE, AuditTable
from ._events import EventLog
from ._loop import (
    DEFAULT_LEADER_LOCK,
    DEFAULT_MAX_INTERVAL_SECONDS,
    Reaper,
    ReaperOptions,
)
from ._metrics import Metrics
from ._stopping import Stopped, StopSwitch

EXIT_NOT_ALL_ENDED = 1
#: Shipped in the package (and copied verbatim to docs/reaper/) so a wheel user has it too.
EXAMPLE_POLICY = "policy.example.toml"


def load_policy(path: str) -> Policy:
    """Read and check the policy file at ``path``; errors name the file and line.

    A device, FIFO, directory, file over 1 MiB or binary file is refused before parsing.
    """
    text = read_text_file(path, what="policy", max_bytes=MAX_POLICY_BYTES)
    try:
        return parse_policy(text)
    except ConfigurationError as error:
        raise ConfigurationError(f"{path}: {error}") from None


@click.command("reap")
@click.option(
    "--policy", "policy_path", required=True, metavar="FILE", help="The policy file (TOML)."
)
@click.option(
    "--dsn", metavar="URL", help="Server URL [default: $DATABASE_URL, else the libpq variables]."
)
@click.option("--dry-run", is_flag=True, help="Decide, log and audit as usual, but end nothing.")
@click.option("--once", is_flag=True, help="Run one sweep and exit.")
@click.option(
    "--max-interval",
    "max_interval_seconds",
    type=DURATION,
    default=DEFAULT_MAX_INTERVAL_SECONDS,
    show_default=f"{DEFAULT_MAX_INTERVAL_SECONDS:g}s",
    help="Longest sleep between sweeps; shorter when a session nears a threshold.",
)
@click.option(
    "--audit",
    "audit_path",
    metavar="FILE",
    help="Append every decision (fsynced before acting) and outcome as JSON lines.",
)
@click.option(
    "--audit-dsn",
    "audit_dsn",
    metavar="URL",
    help="Also write every record to a table on this server (PostgreSQL or MariaDB/MySQL), "
    "decisions committed before acting; nothing is ended while it cannot be written.",
)
@click.option(
    "--audit-table",
    "audit_table",
    metavar="[SCHEMA.]NAME",
    help=f"The --audit-dsn table, created if missing [default: {DEFAULT_TABLE}].",
)
@click.option(
    "--wait",
    "wait_seconds",
    type=DURATION,
    default=5.0,
    show_default="5s",
    help="How long to wait for each ending to show.",
)
@click.option(
    "--leader-lock",
    "leader_lock",
    is_flag=False,
    flag_value=DEFAULT_LEADER_LOCK,
    default=None,
    metavar="[NAME]",
    help="Act only while holding this server lock (PostgreSQL advisory lock, "
    f"MariaDB/MySQL GET_LOCK); default name {DEFAULT_LEADER_LOCK}.",
)
@click.option(
    "--metrics",
    "metrics_address",
    metavar="HOST:PORT",
    help="Serve Prometheus metrics here (needs prometheus_client).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="One line per event on stderr.",
)
def reap_command(policy_path: str, dsn: str | None, dry_run: bool, once: bool,
                 max_interval_seconds: float, audit_path: str | None, audit_dsn: str | None,
                 audit_table: str | None, wait_seconds: float,
                 leader_lock: str | None, metrics_address: str | None,
                 log_format: str) -> None:  # fmt: skip
    """End the sessions that break the rules of a policy file, on time, audited.

    Sweeps: snapshot, decide, audit, act (verified), audit.  Between sweeps it
    sleeps until the earliest moment a rule could newly match, at most
    --max-interval.  SIGTERM and SIGINT stop it within a second.

    Exit status: 0 when stopped (with --once: every ending succeeded), 1 with
    --once when a session was not ended or another reaper holds the leader
    lock, 2 on a bad policy or no server; --once stopped by a signal: 130
    (SIGINT) or 143 (SIGTERM).
    """
    switch = StopSwitch()
    log = EventLog(json_lines=log_format == "json")
    try:
        try:
            switch.install()  # first: a signal while connecting must stop it too
            code = _reap(
                switch, log, policy_path=policy_path, dsn=dsn, once=once,
                options=ReaperOptions(dry_run=dry_run, once=once,
                                      max_interval_seconds=max_interval_seconds,
                                      wait_seconds=wait_seconds, leader_lock=leader_lock),
                audit_path=audit_path, audit_dsn=audit_dsn, audit_table=audit_table,
                metrics_address=metrics_address,
            )  # fmt: skip
        finally:
            switch.restore()  # from here a signal is the command line's again
    except Stopped as stopped:
        if log.last_event != "stopped":  # stopped while starting up: say so all the same
            with contextlib.suppress(Exception):
                log.emit("stopped", "stopped while starting", sweeps=0)
        if once:
            from ..shell._process import Terminated

            if stopped.signum == signal.SIGINT:
                raise KeyboardInterrupt from None
            raise Terminated from None
        return  # a stop is how a reaper ends: exit 0
    if code:
        sys.exit(code)


def _reap(switch: StopSwitch, log: EventLog, *, policy_path: str, dsn: str | None, once: bool,
          options: ReaperOptions, audit_path: str | None, audit_dsn: str | None,
          audit_table: str | None, metrics_address: str | None) -> int:  # fmt: skip
    from ..shell._target import open_control, resolve_url

    policy = load_policy(policy_path)
    if audit_table is not None and not audit_dsn:
        raise ConfigurationError("--audit-table needs --audit-dsn")
    # Parsed first: a bad --dsn is refused before any file or table is opened.
    reaped = resolve_url(dsn).target().redacted()
    sinks: list[AuditSink] = []
    metrics: Metrics | None = None
    try:
        if audit_dsn:
            # First: when the table refuses a decision, the file never holds it either.
            sinks.append(_open_table(audit_dsn, audit_table or DEFAULT_TABLE,
                                     reaped=reaped, log=log))  # fmt: skip
        if audit_path:
            sinks.append(AuditLog(audit_path))
        metrics = Metrics(metrics_address) if metrics_address else None
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    audit: AuditSink | None = AuditFanOut(sinks) if len(sinks) > 1 else next(iter(sinks), None)
    reaper = Reaper(connect=lambda: open_control(dsn), policy=policy, options=options, log=log,
                    audit=audit, metrics=metrics, stop=switch)  # fmt: skip
    try:
        stats = reaper.run()
    finally:
        if audit is not None:
            audit.close()
        if metrics is not None:
            metrics.close()
    if once and not reaper.leader:
        return EXIT_NOT_ALL_ENDED  # the standby line said another reaper holds the lock
    if once and stats.not_ended:
        return EXIT_NOT_ALL_ENDED
    return 0


def _open_table(url: str, table: str, *, reaped: str, log: EventLog) -> AuditTable:
    try:
        return AuditTable(url, table=table, target=reaped, log=log.emit)
    except SessionwardError as error:
        # One line naming the option; the driver's words are scrubbed already.
        message = str(error)
        if not message.startswith("--audit-"):
            message = f"--audit-dsn: {message}"
        raise ConfigurationError(message) from None


@click.group("policy")
def policy_group() -> None:
    """Check a reaper policy, try it offline against a saved snapshot, or print an example."""


@policy_group.command("check")
@click.argument("path", metavar="FILE")
def check_command(path: str) -> None:
    """Validate a policy file; errors name the line.  Exit 0 when valid, 2 when not."""
    policy = load_policy(path)
    click.echo(printable(
        f"{path}: ok, {len(policy.rules)} rule{'s' if len(policy.rules) != 1 else ''}"
    ))  # fmt: skip
    for rule in policy.rules:
        click.echo(printable(f"  {rule.name}: {rule.action.value}, victims {rule.victims.value}"))


@policy_group.command("example")
def example_command() -> None:
    """Print the commented example policy, to copy and adapt.

    sessionward policy example > policy.toml
    """
    from importlib.resources import files  # only this command needs it

    # Bytes, not text: what a redirect saves is the shipped file exactly.
    data = files("sessionward.interfaces.reaper").joinpath(EXAMPLE_POLICY).read_bytes()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@policy_group.command("test")
@click.argument("path", metavar="FILE")
@click.option(
    "--snapshot",
    "snapshot_path",
    required=True,
    metavar="SNAP.json",
    help="A snapshot saved with 'sessionward ls --json' ('-' for stdin).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the decisions as JSON.")
def test_command(path: str, snapshot_path: str, as_json: bool) -> None:  # fmt: skip
    """Say what each rule would do to each session of a saved snapshot, and why.

    Ends nothing and connects to nothing.  Limits per minute start empty; a
    cancel_then_terminate rule shows its first step.
    """
    policy = load_policy(path)
    snapshot = _read_snapshot(snapshot_path)
    sweep = decide(policy, snapshot, now=0.0)
    if as_json:
        click.echo(json.dumps({
            "decisions": [
                {"rule": d.rule, "action": d.action, "verdict": d.verdict.value,
                 "pid": d.session.pid, "why": d.why}
                for d in sweep.decisions
            ],
            "protected": [
                {"rule": rule, "pid": session.pid, "why": why}
                for rule, session, why in sweep.protected
            ],
            "next_check_seconds": sweep.next_check_seconds,
        }, indent=2))  # fmt: skip
        return
    if not sweep.decisions and not sweep.protected:
        click.echo("No rule matches any session of the snapshot.")
    for d in sweep.decisions:
        what = (
            d.action if d.verdict.value in ("act", "report") else f"{d.action} ({d.verdict.value})"
        )
        click.echo(printable(f"{d.rule} → {what} → {_who(d.session)} — {d.why}"))
    for rule, session, why in sweep.protected:
        click.echo(printable(f"{rule} → protected → {_who(session)} — {why}"))
    if sweep.next_check_seconds is not None:
        click.echo(f"next check due in {format_age(sweep.next_check_seconds)}")


def _who(session: Session) -> str:
    """The session in a few words (raw: the line it goes into is escaped whole)."""
    parts = [f"pid {session.pid}", f"{session.user or '?'}@{session.database or '?'}"]
    if session.application:
        parts.append(session.application)
    if session.state:
        parts.append(session.state)
    return " ".join(parts)


def _read_snapshot(path: str) -> Snapshot:
    """Read the snapshot at ``path`` (``-``: standard input), bounded like a policy."""
    text = read_text_file(path, what="snapshot", max_bytes=MAX_SNAPSHOT_BYTES, allow_stdin=True)
    try:
        return load_snapshot(text)
    except ConfigurationError as error:
        raise ConfigurationError(f"{'standard input' if path == '-' else path}: {error}") from None
