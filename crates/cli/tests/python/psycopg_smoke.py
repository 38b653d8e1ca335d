"""psycopg 3 against a Tardigrade SQL listener.

Usage: psycopg_smoke.py URL [basic|full]

`basic` needs only SELECT of constants and transaction control; `full` also
creates a table, inserts with parameters (extended protocol), COPYs rows in and
reads them back. Exits non-zero (with a traceback) on the first mismatch.
"""

import sys

import psycopg
from psycopg import errors
from psycopg.pq import TransactionStatus


def basic(url):
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.info.server_version >= 150000, conn.info.server_version
        assert conn.execute("SELECT 1").fetchone() == (1,)
        try:
            conn.execute("SELEC 1")
            raise AssertionError("syntax error expected")
        except errors.SyntaxError as e:
            assert e.sqlstate == "42601", e.sqlstate
        # The session goes on after an error.
        assert conn.execute("SELECT 2").fetchone() == (2,)
    with psycopg.connect(url) as conn:
        conn.execute("SELECT 1")
        assert conn.info.transaction_status == TransactionStatus.INTRANS
        conn.rollback()
        assert conn.info.transaction_status == TransactionStatus.IDLE
        with conn.transaction():
            conn.execute("SELECT 1")
        assert conn.info.transaction_status == TransactionStatus.IDLE


def full(url):
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE pyt (id INT PRIMARY KEY, name TEXT, score FLOAT8)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO pyt (id, name, score) VALUES (%s, %s, %s)",
                [(1, "one", 1.5), (2, "two", None)],
            )
            with cur.copy("COPY pyt (id, name, score) FROM STDIN") as copy:
                copy.write_row((3, "three\ttab", 3.25))
                copy.write_row((4, None, 4.0))
            rows = cur.execute("SELECT id, name, score FROM pyt ORDER BY id").fetchall()
            assert rows == [
                (1, "one", 1.5),
                (2, "two", None),
                (3, "three\ttab", 3.25),
                (4, None, 4.0),
            ], rows
            got = cur.execute("SELECT name FROM pyt WHERE id = %s", (3,)).fetchone()
            assert got == ("three\ttab",), got
            # Binary results.
            cur2 = conn.cursor(binary=True)
            got = cur2.execute("SELECT id, score FROM pyt WHERE id = %s", (1,)).fetchone()
            assert got == (1, 1.5), got
        try:
            conn.execute("INSERT INTO pyt (id) VALUES (1)")
            raise AssertionError("unique violation expected")
        except errors.UniqueViolation as e:
            assert e.sqlstate == "23505"
    nested_transactions(url)
    prepared_catalog_query(url)
    settings(url)
    named_cursors(url)
    binary_copy(url)
    generated_columns(url)


def generated_columns(url):
    """A stored generated column and an identity column: COPY without a
    column list skips the generated column both ways (as PostgreSQL does),
    and a value given for either is refused with 428C9."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE gen_copy (id INT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " a INT, twice INT GENERATED ALWAYS AS (a * 2) STORED, note TEXT)"
        )
        with conn.cursor() as cur:
            with cur.copy("COPY gen_copy (a, note) FROM STDIN") as copy:
                copy.write_row((1, "x"))
                copy.write_row((2, "y"))
            rows = cur.execute("SELECT id, a, twice, note FROM gen_copy ORDER BY id").fetchall()
            assert rows == [(1, 1, 2, "x"), (2, 2, 4, "y")], rows
            out = []
            with cur.copy("COPY gen_copy TO STDOUT") as copy:
                for row in copy.rows():
                    out.append(row)
            assert out == [("1", "1", "x"), ("2", "2", "y")], out
            for sql in (
                "INSERT INTO gen_copy (a, twice) VALUES (3, 6)",
                "INSERT INTO gen_copy (id, a) VALUES (9, 3)",
                "UPDATE gen_copy SET twice = 0",
            ):
                try:
                    cur.execute(sql)
                    raise AssertionError("428C9 expected: " + sql)
                except errors.GeneratedAlways as e:
                    assert e.sqlstate == "428C9", e.sqlstate
            cur.execute("INSERT INTO gen_copy (id, a) OVERRIDING SYSTEM VALUE VALUES (9, 5)")
            assert cur.execute("SELECT twice FROM gen_copy WHERE id = 9").fetchone() == (10,)


def binary_copy(url):
    """COPY in PostgreSQL's binary format, both ways: rows written with
    `write_row` after `set_types`, and read back with `set_types` and
    `read_row`; a malformed stream is a clean 22P04 error."""
    import datetime
    import decimal
    import uuid

    types = ["int8", "text", "float8", "numeric", "bool", "bytea", "date",
             "timestamptz", "uuid", "jsonb", "int8[]", "text[]"]
    at = datetime.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc)
    rows = [
        (1, "one\ttab", 1.5, decimal.Decimal("12.340"), True, b"\x00\xff",
         datetime.date(2024, 2, 29), at, uuid.UUID(int=5), {"a": [1, None]}, [1, None, 3],
         ["x", None]),
        (2, None, None, None, None, None, None, None, None, None, None, None),
        (3, "", -0.25, decimal.Decimal("-1E+3"), False, b"", datetime.date(1970, 1, 1), at,
         uuid.UUID(int=0), [], [], []),
    ]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE bincopy (id INT8 PRIMARY KEY, name TEXT, score FLOAT8, price NUMERIC,"
            " ok BOOL, data BYTEA, born DATE, at TIMESTAMPTZ, uid UUID, doc JSONB,"
            " nums INT8[], tags TEXT[])"
        )
        with conn.cursor() as cur:
            with cur.copy("COPY bincopy FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
            got = cur.execute("SELECT * FROM bincopy ORDER BY id").fetchall()
            want = [r[:9] + (r[9], r[10], r[11]) for r in rows]
            assert got == want, got
            back = []
            with cur.copy("COPY (SELECT * FROM bincopy ORDER BY id) TO STDOUT (FORMAT BINARY)") as copy:
                copy.set_types(types)
                while (row := copy.read_row()) is not None:
                    back.append(row)
            assert back == want, back
            # Only some columns, in another order.
            with cur.copy("COPY bincopy (name, id) FROM STDIN WITH BINARY") as copy:
                copy.set_types(["text", "int8"])
                copy.write_row(("four", 4))
            assert cur.execute("SELECT name FROM bincopy WHERE id = 4").fetchone() == ("four",)
            # A stream that is not binary COPY data fails cleanly; the
            # session goes on.
            try:
                with cur.copy("COPY bincopy (id) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(b"not a binary copy stream")
                raise AssertionError("bad binary data was accepted")
            except errors.BadCopyFileFormat as e:
                assert e.sqlstate == "22P04", e.sqlstate
            # A field of the wrong size for its type: 22P03.
            try:
                with cur.copy("COPY bincopy (id) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int4"])
                    copy.write_row((5,))
                raise AssertionError("an int4 field was accepted for an int8 column")
            except errors.InvalidBinaryRepresentation as e:
                assert e.sqlstate == "22P03", e.sqlstate
            assert cur.execute("SELECT count(*) FROM bincopy").fetchone() == (4,)


def named_cursors(url):
    """psycopg's server-side (named) cursors: DECLARE with a parameter,
    Describe of the cursor as a portal, FETCH in pages, scroll, WITH HOLD."""
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE paged (id INT PRIMARY KEY, label TEXT)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO paged VALUES (%s, %s)",
                [(i, "label %d" % i) for i in range(1, 251)],
            )
        conn.commit()
        with conn.cursor(name="pages") as cur:
            cur.itersize = 40
            cur.execute("SELECT id, label FROM paged WHERE id > %s ORDER BY id", (10,))
            assert [d.name for d in cur.description] == ["id", "label"], cur.description
            assert cur.fetchone() == (11, "label 11")
            assert cur.fetchmany(3) == [(12, "label 12"), (13, "label 13"), (14, "label 14")]
            rest = list(cur)
            assert len(rest) == 236 and rest[-1] == (250, "label 250"), len(rest)
            cur.scroll(0, mode="absolute")
            assert cur.fetchone() == (11, "label 11")
        conn.commit()
        with conn.cursor(name="held", withhold=True) as cur:
            cur.execute("SELECT count(*) FROM paged")
            conn.commit()
            assert cur.fetchone() == (250,)


def settings(url):
    """Run-time parameters as drivers see them: startup values (application
    name, `options=-c …`) that RESET returns to, ParameterStatus after SET,
    SET undone by ROLLBACK, and statement_timeout cancelling with 57014."""
    with psycopg.connect(
        url, application_name="smoke", options="-c statement_timeout=4000"
    ) as conn:
        conn.autocommit = True
        assert conn.info.parameter_status("application_name") == "smoke"
        show = lambda name: conn.execute("SHOW " + name).fetchone()[0]
        assert show("application_name") == "smoke"
        assert show("statement_timeout") == "4s"
        conn.execute("SET application_name = 'renamed'")
        assert conn.info.parameter_status("application_name") == "renamed"
        with conn.transaction():
            conn.execute("SET application_name = 'in a block'")
            conn.execute("SET LOCAL statement_timeout = '1s'")
            assert show("statement_timeout") == "1s"
            raise_rollback = psycopg.Rollback()
            raise raise_rollback
        assert show("application_name") == "renamed"
        assert conn.info.parameter_status("application_name") == "renamed"
        assert show("statement_timeout") == "4s"
        conn.execute("RESET ALL")
        assert show("application_name") == "smoke"
        assert conn.info.parameter_status("application_name") == "smoke"
        conn.execute("SET statement_timeout = 300")
        for slow in ["SELECT count(*) FROM generate_series(1, 1000000000)", "SELECT pg_sleep(30)"]:
            try:
                conn.execute(slow)
                raise AssertionError("the statement was not cancelled: " + slow)
            except errors.QueryCanceled as e:
                assert "statement timeout" in str(e), e
        conn.execute("RESET statement_timeout")
        assert conn.execute("SELECT pg_sleep(0.05)").fetchone() == (None,)
        assert conn.execute("SELECT 1").fetchone() == (1,)
        try:
            conn.execute("SET TIME ZONE 'Europe/Paris'")
            raise AssertionError("an unsupported time zone was accepted")
        except errors.FeatureNotSupported:
            pass
        try:
            conn.execute("SET no_such_parameter = 1")
            raise AssertionError("an unknown parameter was accepted")
        except errors.UndefinedObject:
            pass


def nested_transactions(url):
    """psycopg 3's nested `conn.transaction()` blocks are savepoints: an
    inner block that fails is rolled back alone and the outer one commits."""
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE nested (id INT PRIMARY KEY, v TEXT)")
        conn.commit()
        with conn.transaction():
            conn.execute("INSERT INTO nested VALUES (1, 'outer')")
            try:
                with conn.transaction():
                    conn.execute("INSERT INTO nested VALUES (2, 'inner')")
                    conn.execute("INSERT INTO nested VALUES (1, 'duplicate')")
            except errors.UniqueViolation:
                pass
            with conn.transaction():
                conn.execute("INSERT INTO nested VALUES (3, 'second inner')")
                with conn.transaction():
                    conn.execute("UPDATE nested SET v = 'deepest' WHERE id = 3")
        rows = conn.execute("SELECT id, v FROM nested ORDER BY id").fetchall()
        assert rows == [(1, "outer"), (3, "deepest")], rows


def prepared_catalog_query(url):
    """A catalog query psycopg has prepared (after 5 runs) sees DDL made
    since: SQLAlchemy's has_sequence() runs this one."""
    q = (
        "SELECT c.relname FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = %s AND c.relname = %s"
        " AND pg_catalog.pg_table_is_visible(c.oid)"
    )
    with psycopg.connect(url, autocommit=True, prepare_threshold=1) as conn:
        for _ in range(3):
            assert conn.execute(q, ("S", "prep_seq")).fetchall() == []
        conn.execute("CREATE SEQUENCE prep_seq")
        assert conn.execute(q, ("S", "prep_seq")).fetchall() == [("prep_seq",)]
        conn.execute("DROP SEQUENCE prep_seq")
        assert conn.execute(q, ("S", "prep_seq")).fetchall() == []


if __name__ == "__main__":
    url = sys.argv[1]
    mode = sys.argv[2] if len(sys.argv) > 2 else "basic"
    basic(url)
    if mode == "full":
        full(url)
    print("psycopg: ok (%s)" % mode)
