"""Raw writes: queued writes land with the commit, and a write that changes the wrong
number of rows stops the commit, pipelined or not, on both backends; in one round trip
(writes, their checks and the COMMIT together), the server makes the checks."""

import pytest
from sqlalchemy import text

from danbao.errors import InvariantViolation
from danbao.store import Database, IntegrityViolation
from danbao.store.raw import (
    PAGE_ROWS_MAX,
    PARAMETERS_PER_STATEMENT_MAX,
    VALUES_ROWS_MAX,
    RowsOf,
    _to_native,
    created_page,
)

PIPELINED = [False, True]
# How a write transaction may travel: statement by statement, pipelined, or in one trip.
MODES = [{}, {"pipelined": True}, {"one_trip": True}]


def _ledger_head(db: Database) -> tuple[int, int]:
    return db.read_raw(lambda raw: raw.rows("SELECT timestamp, transfers_count FROM ledger_head WHERE id = 1")[0])


def _bump(raw, *, where_id: int) -> None:
    raw.expect(
        "UPDATE ledger_head SET transfers_count = transfers_count + 1 WHERE id = ?", (where_id,), 1, "the head is row 1"
    )


@pytest.mark.parametrize("pipelined", PIPELINED)
def test_queued_writes_and_reads_answer_in_order_and_commit_together(db, pipelined):
    before = _ledger_head(db)

    def work(raw):
        _bump(raw, where_id=1)
        later = raw.rows_later("SELECT transfers_count FROM ledger_head WHERE id = 1")
        _bump(raw, where_id=1)
        found = raw.select_where_in_later("SELECT id FROM ledger_head", "id", [1, 2])
        return later(), found()

    seen, found = db.write_raw(work, pipelined=pipelined)
    assert seen == [(before[1] + 1,)]  # a read queued after a write sees that write
    assert found == [(1,)]
    assert _ledger_head(db) == (before[0], before[1] + 2)


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_checked_writes_commit_together(db, mode):
    before = _ledger_head(db)
    committed = []

    def work(raw):
        _bump(raw, where_id=1)
        _bump(raw, where_id=1)
        raw.on_commit(lambda: committed.append(True))

    assert db.write_raw(work, **mode) is None
    assert _ledger_head(db) == (before[0], before[1] + 2)
    assert committed == [True]


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_a_write_that_changes_the_wrong_rows_stops_the_commit(db, mode):
    before = _ledger_head(db)

    def work(raw):
        _bump(raw, where_id=1)
        _bump(raw, where_id=2)  # no such row: changes nothing, against an expected 1
        _bump(raw, where_id=1)

    with pytest.raises(InvariantViolation, match="the head is row 1"):
        db.write_raw(work, **mode)
    assert _ledger_head(db) == before


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_a_queued_write_the_database_refuses_rolls_back_everything(db, mode):
    before = _ledger_head(db)

    def work(raw):
        _bump(raw, where_id=1)
        raw.write("INSERT INTO ledger_head (id, timestamp, hash, transfers_count) VALUES (1, 0, 'x', 0)")

    with pytest.raises(IntegrityViolation):
        db.write_raw(work, **mode)
    assert _ledger_head(db) == before
    assert db.write_raw(lambda raw: _bump(raw, where_id=1), **mode) is None  # the connection still works
    assert _ledger_head(db)[1] == before[1] + 1


SCRATCH = RowsOf("raw_rows_scratch", ("id", "n", "note", "since"), ("text", "bigint", "text", "bigint"))


# More rows than one statement carries (PARAMETERS_PER_STATEMENT_MAX parameters, under
# what SQLite and PostgreSQL bind by default): each list is split over several.
MANY = 40_000
assert MANY > 2 * PARAMETERS_PER_STATEMENT_MAX


@pytest.mark.parametrize("count", [1, VALUES_ROWS_MAX, VALUES_ROWS_MAX + 1, 1000, MANY])
def test_rows_travel_intact_whether_sent_as_a_values_list_or_as_arrays(db, count):
    # PostgreSQL sends up to VALUES_ROWS_MAX rows as scalar parameters and more as one
    # array per column; either way, and on SQLite, the rows are the same. The traps: a
    # VALUES column typed from its first row (a small int there, an int8 later; a bigint
    # NULL in every row) and text that needs escaping in an array.
    rows = [(f"r{i:05d}", i, f'note "{i}", {{é}}' if i % 2 else None, i) for i in range(count)]
    updates = [(f"r{i:05d}", 2**40 + i if i else 1, None, None) for i in range(count)]

    def work(raw):
        raw.run("CREATE TABLE raw_rows_scratch (id VARCHAR(8) PRIMARY KEY, n BIGINT NOT NULL, note TEXT, since BIGINT)")
        raw.insert(SCRATCH, rows)
        inserted = raw.select_where_in("SELECT id, n, note, since FROM raw_rows_scratch", "id", [r[0] for r in rows])
        raw.update_from_rows(
            "UPDATE raw_rows_scratch SET n = v.column2, note = v.column3, since = v.column4 "
            "FROM {rows} WHERE raw_rows_scratch.id = v.column1",
            SCRATCH.types,
            updates,
            why="one row per update",
        )
        updated = raw.rows("SELECT id, n, note, since FROM raw_rows_scratch ORDER BY id")
        raw.run("DROP TABLE raw_rows_scratch")
        return sorted(inserted), updated

    inserted, updated = db.write_raw(work, pipelined=True)
    assert inserted == rows
    assert updated == updates


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_a_write_that_changes_more_rows_than_expected_stops_the_commit_too(db, mode):
    before = _ledger_head(db)

    def work(raw):
        _bump(raw, where_id=1)
        raw.expect("UPDATE ledger_head SET transfers_count = transfers_count + 1 WHERE id >= ?", (0,), 0, "nothing changes")

    with pytest.raises(InvariantViolation) as broken:
        db.write_raw(work, **mode)
    assert str(broken.value).startswith("nothing changes")  # the check's own words first
    assert _ledger_head(db) == before


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_rows_that_must_each_change_one_row_stop_the_commit_when_one_names_no_row(db, mode):
    before = _ledger_head(db)
    template = "UPDATE ledger_head SET transfers_count = v.column2 FROM {rows} WHERE ledger_head.id = v.column1"

    def work(raw):
        raw.update_from_rows(template, ("integer", "bigint"), [(2, 5)])  # unchecked: changes nothing, and may
        raw.update_from_rows(template, ("integer", "bigint"), [(1, 5), (2, 5)], why="one row per update")

    with pytest.raises(InvariantViolation, match="one row per update"):
        db.write_raw(work, **mode)
    assert _ledger_head(db) == before


def test_a_transaction_registers_a_bounded_number_of_commit_callbacks(db):
    ran = []

    def register(count):
        def work(raw):
            _bump(raw, where_id=1)
            for _ in range(count):
                raw.on_commit(lambda: ran.append(1))

        return work

    db.write_raw(register(64))
    assert len(ran) == 64
    before = _ledger_head(db)
    with pytest.raises(InvariantViolation, match="bounded number of callbacks"):
        db.write_raw(register(65))
    assert _ledger_head(db) == before and len(ran) == 64


def test_placeholders_become_postgresqls_own_and_sql_with_a_dollar_is_refused():
    assert _to_native("SELECT ? WHERE x IN (?, ?)") == "SELECT $1 WHERE x IN ($2, $3)"
    with pytest.raises(ValueError, match=r"must not contain '\$'"):
        _to_native("SELECT '$1' WHERE x = ?")


def test_a_row_set_has_one_type_per_column():
    with pytest.raises(ValueError, match="one type per column"):
        RowsOf("t", ("a", "b"), ("text",))


@pytest.mark.parametrize(("select", "limit"), [("SELECT id FROM trades", 10), ("SELECT id FROM trades WHERE x", 0),
                                                ("SELECT id FROM trades WHERE x", PAGE_ROWS_MAX + 1), ("SELECT id FROM trades WHERE x", 10.0)])
def test_a_page_is_a_bounded_page_of_a_filtered_select(select, limit):
    with pytest.raises(InvariantViolation, match="a bounded page of a filtered select"):
        created_page(select, (), None, limit)
    assert created_page("SELECT id FROM trades WHERE x", (), None, PAGE_ROWS_MAX)[0].endswith(f"LIMIT {PAGE_ROWS_MAX}")


@pytest.mark.parametrize("wait", [True, False])
@pytest.mark.parametrize("pipelined", PIPELINED)
def test_on_commit_callbacks_run_once_after_a_commit_and_never_after_a_rollback(db, pipelined, wait):
    ran = []

    def committed(raw):
        _bump(raw, where_id=1)
        raw.on_commit(lambda: ran.append(_ledger_head(db)[1]))  # sees the committed state

    def refused(raw):
        raw.on_commit(lambda: ran.append("rolled back"))
        _bump(raw, where_id=2)

    before = _ledger_head(db)
    db.write_raw(committed, pipelined=pipelined, wait=wait)
    with pytest.raises(InvariantViolation):
        db.write_raw(refused, pipelined=pipelined, wait=wait)
    assert ran == [before[1] + 1]


@pytest.mark.parametrize("mode", MODES[1:], ids=str)
def test_a_pipelined_write_leaves_its_connection_in_transactions_of_its_own(db, mode):
    # Pipelined, a transaction sends its own BEGIN, outside psycopg's transactions
    # (autocommit): a connection back in the pool that way would commit each statement
    # alone, whatever happened to the transaction before.
    def breaks(raw):
        _bump(raw, where_id=1)
        _bump(raw, where_id=2)

    for work in (lambda raw: _bump(raw, where_id=1), breaks, breaks):
        try:
            db.write_raw(work, **mode)
        except InvariantViolation:
            pass
    before = _ledger_head(db)
    for _ in range(5):  # whichever pooled connection comes next, twice over
        with pytest.raises(InvariantViolation):
            db.write_raw(breaks)
    assert _ledger_head(db) == before


@pytest.mark.parametrize("how", ["read_raw", "read"])
def test_a_read_sees_one_snapshot_however_many_queries_it_makes(db, how):
    def bump_elsewhere() -> None:
        db.write_raw(lambda raw: _bump(raw, where_id=1))

    if how == "read_raw":

        def work(raw):
            first = raw.rows("SELECT transfers_count FROM ledger_head WHERE id = 1")
            bump_elsewhere()  # another connection commits between the read's two queries
            return first, raw.rows("SELECT transfers_count FROM ledger_head WHERE id = 1")

        first, second = db.read_raw(work)
    else:

        def work(conn):
            query = text("SELECT transfers_count FROM ledger_head WHERE id = 1")
            first = conn.execute(query).all()
            bump_elsewhere()
            return first, conn.execute(query).all()

        first, second = db.read(work)
    assert [tuple(r) for r in first] == [tuple(r) for r in second]
    assert _ledger_head(db)[1] == first[0][0] + 1  # the bump did commit
