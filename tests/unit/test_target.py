import pytest

from sessionward.core import ConfigurationError, Target, parse_target, redact_url


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("postgresql://app@db/shop", "postgresql"),
        ("postgres://app@db/shop", "postgresql"),
        ("PostgreSQL://app@db/shop", "postgresql"),
        ("postgresql+psycopg://app@db/shop", "postgresql"),
        ("postgresql+psycopg2://app@db/shop", "postgresql"),
        ("mysql://app@db/shop", "mysql"),
        ("mysql+pymysql://app@db/shop", "mysql"),
        ("mariadb://app@db/shop", "mysql"),
        ("mariadb+mariadbconnector://app@db/shop", "mysql"),
    ],
)
def test_schemes(url, kind):
    target = parse_target(url)
    assert target.kind == kind
    assert (target.host, target.user, target.database) == ("db", "app", "shop")


def test_every_part():
    target = parse_target("postgresql://app:s3cret@db.example.com:6432/shop")
    assert target == Target(
        kind="postgresql",
        url="postgresql://app:s3cret@db.example.com:6432/shop",
        host="db.example.com",
        port=6432,
        user="app",
        password="s3cret",
        database="shop",
    )


def test_surrounding_space_is_ignored():
    assert parse_target("  mysql://root@h/db \n").url == "mysql://root@h/db"


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("postgresql://app:pw@[::1]:5432/shop", "::1", 5432),
        ("postgresql://[2001:db8::7]/shop", "2001:db8::7", None),
        ("mysql://root@[fe80::1]:3307/test", "fe80::1", 3307),
    ],
)
def test_ipv6_hosts(url, host, port):
    target = parse_target(url)
    assert (target.host, target.port) == (host, port)


@pytest.mark.parametrize(
    ("url", "user", "password"),
    [
        ("postgresql://app:p%40ss%3Aw%2Fo%3Frd%23@db/shop", "app", "p@ss:w/o?rd#"),
        ("postgresql://app:p%25@db/shop", "app", "p%"),
        ("postgresql://me%40corp:pw@db/shop", "me@corp", "pw"),
        # A raw '@' in the password: the last '@' ends the user part.
        ("postgresql://app:p@ss@db/shop", "app", "p@ss"),
        ("postgresql://app:pa:ss@db/shop", "app", "pa:ss"),
        ("postgresql://app:@db/shop", "app", ""),
        ("postgresql://:pw@db/shop", None, "pw"),
        ("postgresql://app@db/shop", "app", None),
        ("postgresql://db/shop", None, None),
    ],
)
def test_user_and_password(url, user, password):
    target = parse_target(url)
    assert (target.user, target.password, target.host) == (user, password, "db")


@pytest.mark.parametrize(
    ("url", "database"),
    [
        ("postgresql://db/shop", "shop"),
        ("postgresql://db/my%20shop", "my shop"),
        ("postgresql://db/", None),
        ("postgresql://db", None),
        ("postgresql:///shop", "shop"),
    ],
)
def test_database(url, database):
    assert parse_target(url).database == database


def test_unix_socket_url_has_no_host():
    target = parse_target("postgresql:///shop?host=/var/run/postgresql")
    assert target.host is None
    assert target.params == (("host", "/var/run/postgresql"),)


def test_query_params():
    target = parse_target(
        "postgresql://app@db/shop?sslmode=require&application_name=my%20app&connect_timeout=3"
    )
    assert target.params == (
        ("sslmode", "require"),
        ("application_name", "my app"),
        ("connect_timeout", "3"),
    )
    assert target.database == "shop"


@pytest.mark.parametrize(
    "url",
    [
        "oracle://scott@db/orcl",
        "sqlite:///tmp/x.db",
        "http://db/shop",
        "+psycopg://db/shop",
    ],
)
def test_unsupported_scheme(url):
    with pytest.raises(ConfigurationError, match="unsupported URL scheme"):
        parse_target(url)


@pytest.mark.parametrize("url", ["", "db:5432", "host=db user=app", "postgresql:/db"])
def test_not_a_url(url):
    with pytest.raises(ConfigurationError, match="not a server URL"):
        parse_target(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:pw@db:port/shop",
        "postgresql://app:pw@db:99999/shop",
        "postgresql://app:pw@db:-1/shop",
        "postgresql://app:pw@[::1/shop",
    ],
)
def test_malformed(url):
    with pytest.raises(ConfigurationError, match="malformed URL") as info:
        parse_target(url)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        # A raw '#' or '?' in the password: urlsplit would read 'se' as a port
        # and '123' as port 123 on host 'app'.
        "postgresql://app:se#cret@db/shop",
        "postgresql://app:123#x@db/shop",
        "mysql://app:12?34@db/shop",
    ],
)
def test_unencoded_password_is_refused_without_showing_it(url):
    with pytest.raises(ConfigurationError, match="percent-encode") as info:
        parse_target(url)
    message = str(info.value)
    for secret in ("se#cret", "cret", "123#x", "12?34", "se'"):
        assert secret not in message
    assert "app:***@db/shop" in message


SECRETS = [
    ("postgresql://app:s3cret@db:6432/shop", "s3cret"),
    ("postgres://app:s3cret@[::1]:5432/shop", "s3cret"),
    ("mysql://root:p%40ss@127.0.0.1/test", "p%40ss"),
    ("postgresql://app:p@ss@db/shop", "p@ss"),
    ("postgresql://app:s3cret@db/shop?sslmode=require", "s3cret"),
    ("postgresql://app@db/shop?password=s3cret", "s3cret"),
    ("postgresql://app@db/shop?sslmode=require&password=s3cret&x=1", "s3cret"),
    ("mysql://app@db/shop?PASSWORD=s3cret", "s3cret"),
    ("mysql://app@db/shop?passwd=s3cret", "s3cret"),
    ("postgresql://app@db/shop?sslpassword=s3cret", "s3cret"),
    ("postgresql://app:pw-one@db/shop?password=pw-two", "pw-one"),
    ("postgresql://app:pw-one@db/shop?password=pw-two", "pw-two"),
    ("postgresql+psycopg://:s3cret@db/shop", "s3cret"),
]


@pytest.mark.parametrize(("url", "secret"), SECRETS)
def test_repr_and_redacted_never_show_the_password(url, secret):
    target = parse_target(url)
    assert secret not in repr(target)
    assert secret not in str(target)
    assert secret not in target.redacted()
    assert secret not in redact_url(url)
    assert "***" in target.redacted()


def test_repr_keeps_what_helps():
    target = parse_target("postgresql://app:s3cret@db:6432/shop?sslmode=require&password=x")
    assert repr(target) == (
        "Target(kind='postgresql', host='db', port=6432, user='app', database='shop', "
        "params=(('sslmode', 'require'), ('password', '***')))"
    )
    # The password is still there for the adapter.
    assert target.password == "s3cret"
    assert ("password", "x") in target.params


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://app:s3cret@db:6432/shop", "postgresql://app:***@db:6432/shop"),
        ("mysql://u:p%40ss@h/db?password=x&ssl=1", "mysql://u:***@h/db?password=***&ssl=1"),
        ("postgresql://app:p@ss@db/shop", "postgresql://app:***@db/shop"),
        ("postgresql://app:se#cret@db/shop", "postgresql://app:***@db/shop"),
        ("postgresql://app:se?cret@db/shop", "postgresql://app:***@db/shop"),
        ("postgresql://app@db/shop?password=", "postgresql://app@db/shop?password=***"),
        (
            "postgresql://app@db/shop?password=a&b=c#frag",
            "postgresql://app@db/shop?password=***&b=c#frag",
        ),
        ("postgresql://app@db/shop", "postgresql://app@db/shop"),
        ("postgresql:///db", "postgresql:///db"),
        ("postgresql://db/shop?application_name=a@b", "postgresql://db/shop?application_name=a@b"),
        ("postgresql://db/shop?mypassword=x", "postgresql://db/shop?mypassword=x"),
        ("not a url", "not a url"),
        # Without its scheme, a URL still hides its password.
        ("app:s3cret@db/shop", "app:***@db/shop"),
        ("db:5432/shop", "db:5432/shop"),
    ],
)
def test_redact_url(url, redacted):
    assert redact_url(url) == redacted


def test_error_messages_redact_the_password():
    with pytest.raises(ConfigurationError) as info:
        parse_target("oracle://scott:tiger@db/orcl")
    assert "tiger" not in str(info.value)
    assert "scott:***@db" in str(info.value)
    for not_a_url in ("scott:tiger@db/orcl", "host=db user=scott password=tiger"):
        with pytest.raises(ConfigurationError, match="not a server URL") as info:
            parse_target(not_a_url)
        assert "tiger" not in str(info.value)


def test_targets_are_frozen():
    with pytest.raises(AttributeError):
        parse_target("postgresql://db/shop").host = "elsewhere"  # type: ignore[misc]
