def test_pg_server_answers(pg):
    rows = pg.execute("SELECT 1")
    assert rows == [(1,)]


def test_mysql_server_answers(mysql):
    assert mysql.execute("SELECT 1") == [(1,)]
