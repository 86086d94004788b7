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
        # A raw ':' in the password: the first ':' ends the user name.
        ("postgresql://app:pa:ss@db/shop", "app", "pa:ss"),
        ("postgresql://app:p+s%2Bs@db/shop", "app", "p+s+s"),
        ("postgresql://app:%D0%BF%C3%A4ss@db/shop", "app", "пäss"),
        ("postgresql://app:пäss@db/shop", "app", "пäss"),
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
    ("url", "needle"),
    [
        ("postgresql://app:pw@db:port/shop", "port in the URL is not a number"),
        ("postgresql://app:pw@db:99999/shop", "port 99999 in the URL is out of range"),
        ("postgresql://app:pw@db:0/shop", "port 0 in the URL is out of range"),
        ("postgresql://app:pw@db:-1/shop", "port in the URL is not a number"),
        ("postgresql://app:pw@db:１２/shop", "port in the URL is not a number"),
        ("postgresql://app:pw@h1:1,h2:2/shop", "?host=h1,h2&port=p1,p2"),
        ("postgresql://app:pw@[::1/shop", "malformed [IPv6] host"),
        ("postgresql://app:pw@[::1]x/shop", "malformed [IPv6] host"),
        ("postgresql://app:pw@a..b/shop", "not a valid host name"),
        ("postgresql://app:pw@a%5Cb/shop", "not a valid host name"),
        ("postgresql://app:pw@a\\b/shop", "characters no host name has"),
        ("postgresql://app:pw@db/shop?a", "name=value pairs"),
        ("postgresql://app:pw@db/shop?=1", "name=value pairs"),
        ("postgresql://app:pw@db/shop?a%20b=1", "name=value pairs"),
        ("postgresql://app:pw@db/shop?a=%FF", "the value of a in the URL is not UTF-8"),
        ("postgresql://app:pw@db/sh%00op", "the database name in the URL contains %00"),
        ("mysql://r%FFoot:pw@db/shop", "the user name in the URL is not UTF-8"),
        ("mysql://root:p%FFw@db/shop", "the password in the URL is not UTF-8"),
        ("mysql://root:pw%zz@db/shop", "'%' not followed by two hex digits"),
        ("mysql://root:pw%@db/shop", "'%' not followed by two hex digits"),
        ("mysql://root:p w@db/shop", "space or control character"),
        ("mysql://root:p\x1b[2Jw@db/shop", "space or control character"),
        ("mysql://root:p\udcffw@db/shop", "space or control character"),
    ],
)
def test_malformed(url, needle):
    with pytest.raises(ConfigurationError) as info:
        parse_target(url)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message
    for secret in ("pw", "p w", "pw%zz", "p%FFw"):
        assert secret not in message


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        # A raw '#' or '?' in the password: urlsplit would read 'se' as a port
        # and '123' as port 123 on host 'app'.
        ("postgresql://app:se#cret@db/shop", "raw '#'"),
        ("postgresql://app:123#x@db/shop", "raw '#'"),
        ("mysql://app:12?34@db/shop", "'@' after its host part"),
        # A raw '/' or '@': libpq ends the user part at the first '@' and would
        # look 'ss@db' up in DNS; Python's urlsplit at the last.
        ("postgresql://app:p@ss@db/shop", "host part of the URL contains '@'"),
        ("postgresql://u:ssZq9x@x/y@127.0.0.1/db", "'@' after its host part"),
        ("postgresql://u:a/b@127.0.0.1/db", "'@' after its host part"),
        ("postgresql://db/shop?application_name=a@b", "'@' after its host part"),
    ],
)
def test_unencoded_password_is_refused_without_showing_it(url, needle):
    with pytest.raises(ConfigurationError, match="percent-encode") as info:
        parse_target(url)
    message = str(info.value)
    assert needle in message
    for secret in ("se#cret", "cret", "123#x", "12?34", "se'", "p@ss", "ss@db", "ssZq9x", "a/b"):
        assert secret not in message
    # Never echoed: the URL did not parse, so any part of it may be the password.
    assert "://" not in message.replace("postgresql://, mysql://", "")


SECRETS = [
    ("postgresql://app:s3cret@db:6432/shop", "s3cret"),
    ("postgres://app:s3cret@[::1]:5432/shop", "s3cret"),
    ("mysql://root:p%40ss@127.0.0.1/test", "p%40ss"),
    ("postgresql://app:p%40ss@db/shop", "p@ss"),
    ("postgresql://app@db/shop?pass%77ord=s3cret", "s3cret"),
    ("postgresql://app@db/shop?%70assword=s3cret", "s3cret"),
    ("postgresql://app@db/shop?Password=s3cret", "s3cret"),
    ("mysql://app@db/shop?ssl_key_password=s3cret", "s3cret"),
    ("mysql://app@db/shop?password1=s3cret", "s3cret"),
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
        ("postgresql://db/shop?mypassword=x", "postgresql://db/shop?mypassword=***"),
        ("postgresql://db/shop?pass%77ord=x&a=1", "postgresql://db/shop?pass%77ord=***&a=1"),
        ("postgresql://db/shop?pass%2577ord=x", "postgresql://db/shop?pass%2577ord=***"),
        (
            "cannot connect to postgresql://h/d?password=x: refused",
            "cannot connect to postgresql://h/d?password=***: refused",
        ),
        ("--dsn: the URL has an '@' after its host", "--dsn: the URL has an '@' after its host"),
        ("not a url", "not a url"),
        # Without its scheme, a URL still hides its password.
        ("app:s3cret@db/shop", "app:***@db/shop"),
        ("db:5432/shop", "db:5432/shop"),
    ],
)
def test_redact_url(url, redacted):
    assert redact_url(url) == redacted


def test_error_messages_never_quote_the_url():
    with pytest.raises(ConfigurationError) as info:
        parse_target("oracle://scott:tiger@db/orcl")
    assert str(info.value) == (
        "unsupported URL scheme 'oracle' (use postgresql://, mysql:// or mariadb://)"
    )
    for not_a_url in ("scott:tiger@db/orcl", "host=db user=scott password=tiger"):
        with pytest.raises(ConfigurationError, match="not a server URL") as info:
            parse_target(not_a_url)
        assert "tiger" not in str(info.value)


def test_targets_are_frozen():
    with pytest.raises(AttributeError):
        parse_target("postgresql://db/shop").host = "elsewhere"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://app:s3cret@db:6432/shop", "postgresql://app:***@db:6432/shop"),
        ("POSTGRES://app:@db/shop", "postgres://app:***@db/shop"),
        (
            "postgresql://app@db/shop?pass%77ord=x&sslmode=require",
            "postgresql://app@db/shop?password=***&sslmode=require",
        ),
        ("mysql://root@h/db?ssl_ca=/etc/ca.pem", "mysql://root@h/db?ssl_ca=/etc/ca.pem"),
        ("postgresql://%2Fvar%2Frun/db", "postgresql://%2Fvar%2Frun/db"),
        ("postgresql://[::1]:5432/db", "postgresql://[::1]:5432/db"),
        ("postgresql://h1,h2/db", "postgresql://h1,h2/db"),
        ("postgresql://db?password=x", "postgresql://db/?password=***"),
        ("postgresql://", "postgresql://"),
    ],
)
def test_redacted_is_rebuilt_from_the_parts(url, redacted):  # fmt: skip
    assert parse_target(url).redacted() == redacted
    # What is printed parses again, to the same parts (the password aside).
    again = parse_target(redacted)
    target = parse_target(url)
    assert (again.host, again.port, again.user, again.database) == (
        target.host,
        target.port,
        target.user,
        target.database,
    )


@pytest.mark.parametrize(
    ("url", "driver_url"),
    [
        ("PostgreSQL+psycopg://app:p%40ss@db/shop", "postgresql://app:p%40ss@db/shop"),
        ("postgres://app:p:s@db/shop", "postgresql://app:p%3As@db/shop"),
        ("postgresql://app@db/shop?pass%77ord=a%2Bb", "postgresql://app@db/shop?password=a%2Bb"),
        ("postgresql:///shop?host=/tmp", "postgresql:///shop?host=%2Ftmp"),
    ],
)
def test_to_url_is_what_libpq_reads(url, driver_url):
    assert parse_target(url).to_url() == driver_url


def test_scrub_hides_every_form_of_the_password():
    target = parse_target("mysql://u:p%C3%A4%2Fss%20w@h/db?passwd=other-secret")
    text = "a p\xe4/ss w b p%C3%A4%2Fss%20w c pä/ss w d other-secret e p%C3%A4/ss%20w"
    assert target.scrub(text) == "a *** b *** c *** d *** e ***"


def test_scrub_keeps_words_around_a_short_password():
    target = parse_target("postgresql://u:x@h/db")
    assert target.scrub('role "u" does not exist; password "x"') == (
        'role "u" does not exist; password "***"'
    )


def test_parse_target_is_case_insensitive_on_the_scheme():
    assert parse_target("MARIADB://root@h/db").kind == "mysql"
    assert parse_target("POSTGRESQL://root@h/db").to_url() == "postgresql://root@h/db"
