"""Which pooled connection a SQLite file database hands out next."""

from danbao.store import Database


def test_the_connection_returned_last_is_handed_out_first(tmp_path):
    # SQLite drops a connection's page cache when another connection wrote since its last
    # transaction; reusing the writer's own connection keeps that cache warm.
    db = Database(f"sqlite:///{tmp_path}/p.db")
    first, second = db.engine.raw_connection(), db.engine.raw_connection()
    first_dbapi, second_dbapi = first.dbapi_connection, second.dbapi_connection
    assert first_dbapi is not second_dbapi
    first.close()
    second.close()  # returned last
    again = db.engine.raw_connection()
    assert again.dbapi_connection is second_dbapi
    again.close()
    db.dispose()


def test_writes_reuse_one_connection_while_nothing_else_holds_it(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/p.db")
    pooled = [db.engine.raw_connection() for _ in range(2)]  # two idle connections in the pool
    for connection in pooled:
        connection.close()
    used = [db.write_raw(lambda raw: id(raw._cursor.connection)) for _ in range(5)]
    assert len(set(used)) == 1
    db.dispose()
