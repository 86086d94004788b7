"""A real three-session lock chain, shared by the top and recorder tests."""

from __future__ import annotations

from typing import Any

from sessionward.core import parse_target
from tests.fix_proxy import Proxy
from tests.fix_servers import Server


def make_table(server: Server, database: str) -> None:
    setup = Server(server.name, server.engine, server.url_for(database))
    setup.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
    setup.execute("INSERT INTO accounts VALUES (1, 100), (2, 100)")
    if server.engine == "postgresql":
        setup.execute("GRANT ALL ON accounts TO PUBLIC")


def lock_chain(server: Server, victims: Any, *, user: str, database: str) -> tuple[Any, Any, Any]:
    """root holds row 1; middle holds row 2 and waits for row 1; tail waits for row 2."""
    make_table(server, database)
    root = victims(server, database=database, user=user)
    root.run("BEGIN")
    root.run("UPDATE accounts SET balance = 0 WHERE id = 1")
    middle = victims(server, database=database, user=user)
    middle.run("BEGIN")
    middle.run("UPDATE accounts SET balance = 0 WHERE id = 2")
    middle.start("UPDATE accounts SET balance = 1 WHERE id = 1")
    tail = victims(server, database=database, user=user)
    tail.run("BEGIN")
    tail.start("UPDATE accounts SET balance = 2 WHERE id = 2")
    return root, middle, tail


def through_proxy(url: str) -> tuple[Proxy, str]:
    """A proxy to the server of ``url``, and the same URL through it."""
    target = parse_target(url)
    port = target.port or (5432 if target.kind == "postgresql" else 3306)
    proxy = Proxy(target.host or "127.0.0.1", port)
    scheme, _, rest = url.partition("://")
    auth, _, path = rest.partition("/")
    userinfo = auth.rpartition("@")[0]
    return proxy, f"{scheme}://{userinfo + '@' if userinfo else ''}127.0.0.1:{proxy.port}/{path}"
