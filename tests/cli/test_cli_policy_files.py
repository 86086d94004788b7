"""Policies and snapshots a user names: refused in one stderr line, exit 2, never a hang (#14)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.cli.conftest import CliResult, run_script

OK_POLICY = '[[rule]]\nname = "idle-tx"\naction = "terminate"\nmatch = { idle_over = "5m" }\n'


def assert_one_clean_line(result: CliResult, *needles: str) -> None:
    assert result.code == 2, result
    assert "Traceback" not in result.err
    assert "internal error" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    for needle in needles:
        assert needle in lines[0], lines[0]


def with_stdin(data: bytes, *args: str) -> CliResult:
    completed = subprocess.run(
        [sys.executable, "-m", "sessionward", *args], input=data, capture_output=True, timeout=60
    )
    return CliResult(completed.returncode, completed.stdout.decode(), completed.stderr.decode())


@pytest.fixture
def ok_policy(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(OK_POLICY)
    return str(path)


@pytest.mark.parametrize("command", [["policy", "check"], ["policy", "test", "--snapshot", "-"]])
def test_a_device_is_refused_at_once(command):
    result = run_script(*command, "/dev/zero")
    assert_one_clean_line(result, "cannot read policy /dev/zero: not a regular file (a device)")


def test_a_fifo_does_not_block(tmp_path):
    fifo = tmp_path / "policy.toml"
    os.mkfifo(fifo)
    # No writer ever opens it: a blocking open would hang until the timeout.
    assert_one_clean_line(run_script("policy", "check", str(fifo)), "not a regular file (a pipe)")


def test_a_directory_is_refused(tmp_path):
    result = run_script("policy", "check", str(tmp_path))
    assert_one_clean_line(result, "not a regular file (a directory)")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"\xff\xfe[\x00[\x00r\x00", "is not UTF-8 text (byte 0 is 0xff)"),
        (b"\x7fELF\x02\x01\x01\x00\x00", "is not text (byte 7 is NUL)"),
        (b"# " + b"x" * (1 << 20) + b"\n", "is larger than 1 MiB"),
    ],
    # Short ids: pytest puts the id in PYTEST_CURRENT_TEST, and a 1 MiB one makes
    # the environment too big for the subprocess the test starts.
    ids=["utf16", "elf", "huge"],
)
def test_a_binary_or_huge_policy_is_one_line_naming_the_file(tmp_path, data, needle):
    path = tmp_path / "policy.toml"
    path.write_bytes(data)
    assert_one_clean_line(run_script("policy", "check", str(path)), f"policy {path} ", needle)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("nan", "idle_in_transaction_over = nan is not a duration"),
        ("inf", "idle_in_transaction_over = inf is not a duration"),
        ("-1", "idle_in_transaction_over = -1 is negative"),
        ('"400d"', "longer than 366 days"),
    ],
)
@pytest.mark.parametrize("command", ["check", "test"])
def test_a_policy_that_would_end_everything_is_refused(tmp_path, value, needle, command):
    path = tmp_path / "policy.toml"
    path.write_text(
        f'[[rule]]\nname = "idle-tx"\naction = "terminate"\n\n'
        f"[rule.match]\nidle_in_transaction_over = {value}\n"
    )
    snapshot = tmp_path / "snap.json"
    snapshot.write_text("{}")
    extra = ["--snapshot", str(snapshot)] if command == "test" else []
    result = run_script("policy", command, str(path), *extra)
    assert_one_clean_line(result, f"{path}: policy line 6: rule 'idle-tx': match: ", needle)


def test_a_deeply_nested_policy_is_one_line(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("a = " + "[" * 100_000)
    assert_one_clean_line(
        run_script("policy", "check", str(path)), "policy is not valid TOML: nested too deeply"
    )


def test_a_deeply_nested_snapshot_file_is_one_line(tmp_path, ok_policy):
    path = tmp_path / "snap.json"
    path.write_text('{"a":' * 100_000)
    result = run_script("policy", "test", ok_policy, "--snapshot", str(path))
    assert_one_clean_line(result, f"{path}: snapshot is not JSON: nested too deeply")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b'{"a":' * 100_000, "standard input: snapshot is not JSON: nested too deeply"),
        (b"\xff", "snapshot standard input is not UTF-8 text"),
        (b'{"schema": "sessionward.snapshot/1", "x": NaN}', "NaN is not a JSON number"),
    ],
)
def test_a_bad_snapshot_on_stdin_is_one_line(ok_policy, data, needle):
    assert_one_clean_line(with_stdin(data, "policy", "test", ok_policy, "--snapshot", "-"), needle)


def test_a_snapshot_device_is_refused(ok_policy):
    result = run_script("policy", "test", ok_policy, "--snapshot", "/dev/zero")
    assert_one_clean_line(result, "cannot read snapshot /dev/zero: not a regular file (a device)")


def test_a_snapshot_from_a_later_version_still_loads(tmp_path, ok_policy):
    snapshot = {
        "schema": "sessionward.snapshot/1",
        "taken_at": "2026-01-01T00:00:00+00:00",
        "server": {"engine": "postgresql", "version": "18.1", "version_num": 180001,
                   "own_pid": 1, "added_later": {"x": [1]}},
        "degraded": [],
        "sessions": [{"pid": 7, "state": "idle", "state_age_seconds": 600.0, "user": "app",
                      "is_superuser": False, "added_later": "y"}],
        "added_later": True,
    }  # fmt: skip
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(snapshot))
    result = run_script("policy", "test", ok_policy, "--snapshot", str(path))
    assert result.code == 0, result
    assert "idle-tx → terminate → pid 7" in result.out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--idle-over", "nan"], "Invalid value for '--idle-over': not a duration: 'nan'"),
        (["--xact-over", "inf"], "Invalid value for '--xact-over': not a duration: 'inf'"),
        (["--query-over", "400d"], "'--query-over': duration '400d' is longer than 366 days"),
        (["--query", "[[:alpha:]]"], "[:alpha:] is a POSIX class, which Python's re does not know"),
        (["--query", "[[a]"], "bad --query regex '[[a]': Possible nested set"),
        (["--query", "(" * 5000], "bad --query regex"),
    ],
)
def test_bad_filters_are_one_line_naming_the_option(args, needle):
    # Refused before any connection: the port is closed.
    result = run_script("ls", "--dsn", "postgresql://u@127.0.0.1:1/x", *args)
    assert_one_clean_line(result, needle)
    assert "Warning" not in result.err
