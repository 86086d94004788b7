"""Prometheus metrics for ``sessionward reap --metrics HOST:PORT`` (needs ``prometheus_client``)."""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any

from ...core import ConfigurationError, DriverNotInstalled, Snapshot

_HINT = "--metrics needs prometheus_client: pip install 'sessionward[metrics]'"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``:PORT`` (all interfaces).

    >>> parse_address("127.0.0.1:9187"), parse_address(":9187")
    (('127.0.0.1', 9187), ('0.0.0.0', 9187))
    """
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigurationError(f"--metrics wants HOST:PORT, not {text!r}")
    return (host.strip("[]") or "0.0.0.0", int(port))


class Metrics:
    """The reaper's gauges and counters, served over HTTP on their own registry."""

    def __init__(self, address: str) -> None:
        try:
            import prometheus_client as prom
        except ImportError:
            raise DriverNotInstalled(_HINT) from None
        host, port = parse_address(address)
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.sessions = prom.Gauge(
            "sessionward_sessions", "Client sessions in the last snapshot.",
            ["state", "database", "application"], registry=r,
        )  # fmt: skip
        self.by_origin = prom.Gauge(
            "sessionward_sessions_by_origin",
            "Client sessions in the last snapshot whose client named its service or code line.",
            ["service", "code", "state"], registry=r,
        )  # fmt: skip
        self.ended = prom.Counter(
            "sessionward_sessions_ended", "Sessions signalled by the reaper, by outcome.",
            ["rule", "action", "outcome"], registry=r,
        )  # fmt: skip
        self.reported = prom.Counter(
            "sessionward_sessions_reported", "Sessions a report rule matched.", ["rule"], registry=r
        )
        self.sweep_seconds = prom.Histogram(
            "sessionward_sweep_duration_seconds", "Snapshot, decide and act.", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )  # fmt: skip
        self.last_sweep = prom.Gauge(
            "sessionward_last_sweep_timestamp_seconds", "When the last sweep finished.", registry=r
        )
        self.leader = prom.Gauge(
            "sessionward_leader", "1 when this reaper holds the leader lock (or needs none).",
            registry=r,
        )  # fmt: skip
        self.errors = prom.Counter(
            "sessionward_sweep_errors", "Sweeps that failed (server unreachable…).", registry=r
        )
        try:
            self._server: Any = prom.start_http_server(port, addr=host, registry=r)
        except OSError as error:
            raise ConfigurationError(f"cannot serve metrics on {address}: {error}") from None

    def observe_snapshot(self, snapshot: Snapshot) -> None:
        tally = Tally(
            (s.state or "unknown", s.database or "", s.application or "")
            for s in snapshot.sessions
            if s.is_client
        )
        self.sessions.clear()
        for labels, count in tally.items():
            self.sessions.labels(*labels).set(count)
        # Cleared each sweep, so its series are those of the sessions there now.
        origins = Tally(
            (s.origin.service or "", s.origin.code or "", s.state or "unknown")
            for s in snapshot.sessions
            if s.is_client and s.origin is not None and (s.origin.service or s.origin.code)
        )
        self.by_origin.clear()
        for labels, count in origins.items():
            self.by_origin.labels(*labels).set(count)

    def close(self) -> None:
        server = self._server
        if isinstance(server, tuple):  # prometheus_client >= 0.16: (server, thread)
            server[0].shutdown()
            server[0].server_close()
