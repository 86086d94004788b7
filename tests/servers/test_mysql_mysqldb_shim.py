"""PyMySQL standing in for MySQLdb (as Django projects do) must not unmap its errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_errors_stay_mapped_under_install_as_mysqldb():
    # A fresh interpreter: install_as_MySQLdb() changes sys.modules for good.
    script = textwrap.dedent(
        """
        import pymysql
        pymysql.install_as_MySQLdb()
        from MySQLdb.converters import conversions  # what Django's backend imports
        import pymysql.err, importlib
        assert pymysql.err is not importlib.import_module("pymysql.err")  # the trap is real
        import sessionward
        try:
            sessionward.connect("mysql://root@127.0.0.1:1/x")
        except sessionward.ConnectionFailed as error:
            print("mapped:", error)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "mapped: cannot connect to mysql://root@127.0.0.1:1/x" in done.stdout
