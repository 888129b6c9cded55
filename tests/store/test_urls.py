"""Which database a URL names, and how it is shown: never with its password."""

import pytest

from danbao.store import Database, StoreError, StoreUnavailable, current_revision
from tests.ports import unused_port


def test_postgres_urls_people_paste_use_psycopg_and_are_shown_without_their_password():
    db = Database("postgres://danbao:s3cret@db.internal:5432/books")
    assert db.dialect == "postgresql" and db.url.startswith("postgresql+psycopg://")
    assert "s3cret" not in db.shown_url and "db.internal:5432/books" in db.shown_url
    db.dispose()


def test_a_sqlite_url_is_shown_as_it_is(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/books.db")
    assert db.shown_url == f"sqlite:///{tmp_path}/books.db"
    db.dispose()


def test_an_unsupported_url_is_a_store_error():
    with pytest.raises(StoreError, match="unsupported database URL"):
        Database("mysql://x/y")


def test_an_unreachable_server_is_store_unavailable_not_a_driver_error():
    db = Database(f"postgresql://danbao@127.0.0.1:{unused_port()}/books")
    with pytest.raises(StoreUnavailable, match="connection") as raised:
        current_revision(db)
    assert raised.value.code == "store_unavailable"
    db.dispose()


def test_reads_from_an_unreachable_server_are_store_unavailable_too():
    db = Database(f"postgresql://danbao@127.0.0.1:{unused_port()}/books")
    with pytest.raises(StoreUnavailable):
        db.read_raw(lambda raw: raw.rows("SELECT 1"))
    with pytest.raises(StoreUnavailable):
        db.read(lambda conn: conn.exec_driver_sql("SELECT 1").all())
    db.dispose()


def test_the_url_is_the_one_given_else_danbao_database_url_else_a_file_here(monkeypatch):
    from danbao.store.database import DEFAULT_URL, database_url

    monkeypatch.delenv("DANBAO_DATABASE_URL", raising=False)
    assert database_url(None) == DEFAULT_URL == "sqlite:///danbao.db"
    monkeypatch.setenv("DANBAO_DATABASE_URL", "postgresql://danbao@db.internal/books")
    assert database_url(None) == "postgresql://danbao@db.internal/books"
    assert database_url("sqlite:///given.db") == "sqlite:///given.db"


@pytest.mark.parametrize(
    ("url", "file"),
    [("sqlite:////var/lib/danbao/books.db", "/var/lib/danbao/books.db"), ("sqlite:///:memory:", None), ("postgresql://danbao@db.internal/books", None)],
)
def test_only_a_sqlite_url_of_a_file_names_a_file(url, file):
    from pathlib import Path

    from danbao.store.database import sqlite_file

    assert sqlite_file(url) == (None if file is None else Path(file))
