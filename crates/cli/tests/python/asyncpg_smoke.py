"""asyncpg against a Tardigrade SQL listener.

Usage: asyncpg_smoke.py URL

asyncpg speaks only the extended protocol, with binary formats for every
parameter and result, introspects the types it does not know through
pg_catalog (oid and oid[] columns), resets pooled connections with
`pg_advisory_unlock_all()`, `CLOSE ALL`, `UNLISTEN *` and `RESET ALL`, and
copies records in with binary COPY FROM STDIN. This script does what
applications do with it and exits non-zero (with a traceback) on the first
wrong value.
"""

import asyncio
import datetime
import decimal
import json
import sys
import uuid

import asyncpg


def check(got, want, what):
    if got != want or not isinstance(got, type(want)):
        raise AssertionError(f"{what}: got {got!r} ({type(got).__name__}), want {want!r}")


async def scalars(conn):
    check(await conn.fetchval("SELECT 1"), 1, "select 1")
    check(await conn.fetchval("SELECT $1::INT4 + 1", 41), 42, "int4 param")
    check(await conn.fetchval("SELECT $1::INT8 * 2", 2**40), 2**41, "int8 param")
    check(await conn.fetchval("SELECT $1::TEXT || '!'", "héllo"), "héllo!", "text param")
    check(await conn.fetchval("SELECT NOT $1::BOOL", False), True, "bool param")
    check(await conn.fetchval("SELECT $1::FLOAT8 / 2", 3.0), 1.5, "float8 param")
    check(
        await conn.fetchval("SELECT $1::NUMERIC + 1", decimal.Decimal("12345678901234567890.125")),
        decimal.Decimal("12345678901234567891.125"),
        "numeric param",
    )
    check(
        await conn.fetchval("SELECT $1::NUMERIC(10,2)", decimal.Decimal("-0.005")),
        decimal.Decimal("-0.01"),
        "numeric(10,2) rounding",
    )
    check(await conn.fetchval("SELECT $1::BYTEA", b"\x00\x01\xff"), b"\x00\x01\xff", "bytea")
    check(
        await conn.fetchval("SELECT $1::DATE + 1", datetime.date(2024, 2, 28)),
        datetime.date(2024, 2, 29),
        "date",
    )
    ts = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)
    check(await conn.fetchval("SELECT $1::TIMESTAMP", ts), ts, "timestamp")
    tstz = datetime.datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=datetime.timezone.utc)
    check(await conn.fetchval("SELECT $1::TIMESTAMPTZ", tstz), tstz, "timestamptz")
    u = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    check(await conn.fetchval("SELECT $1::UUID", u), u, "uuid")
    check(await conn.fetchval("SELECT $1::UUID::TEXT", u), str(u), "uuid as text")
    # asyncpg sends and returns jsonb as its text.
    got = await conn.fetchval("SELECT $1::JSONB -> 'a'", '{"a": [1, "x", null]}')
    check(json.loads(got), [1, "x", None], "jsonb")
    check(await conn.fetchval("SELECT NULL::INT8"), None, "null")
    check(await conn.fetchval("SELECT 26::OID"), 26, "oid")
    check(await conn.fetchval("SELECT pg_typeof(1::OID)::TEXT"), "oid", "pg_typeof oid")
    check(await conn.fetchval("SELECT 4294967295::OID"), 4294967295, "largest oid")
    row = await conn.fetchrow(
        "SELECT $1::INT8 AS a, $2::TEXT AS b, $3::BOOL AS c", 7, "seven", None
    )
    check((row["a"], row["b"], row["c"]), (7, "seven", None), "fetchrow")
    check(list(row.keys()), ["a", "b", "c"], "record keys")


async def arrays(conn):
    check(await conn.fetchval("SELECT $1::INT8[]", [1, None, 3]), [1, None, 3], "int8[]")
    check(await conn.fetchval("SELECT $1::INT4[]", [4, 5]), [4, 5], "int4[]")
    check(await conn.fetchval("SELECT $1::TEXT[]", ["a", None, "c d"]), ["a", None, "c d"], "text[]")
    check(
        await conn.fetchval("SELECT $1::NUMERIC[]", [decimal.Decimal("1.5"), None]),
        [decimal.Decimal("1.5"), None],
        "numeric[]",
    )
    check(await conn.fetchval("SELECT $1::INT8[]", []), [], "empty int8[]")
    check(await conn.fetchval("SELECT '{}'::TEXT[]"), [], "empty text[] literal")
    check(await conn.fetchval("SELECT ARRAY[1, 2, NULL]::INT8[]"), [1, 2, None], "array constructor")
    check(await conn.fetchval("SELECT array_length($1::INT8[], 1)", [9, 8, 7]), 3, "array_length")
    check(await conn.fetchval("SELECT 3 = ANY($1::INT8[])", [1, 2, 3]), True, "= ANY")
    check(await conn.fetchval("SELECT '{1,2}'::OID[]"), [1, 2], "oid[]")


async def tables(conn):
    await conn.execute("DROP TABLE IF EXISTS apg")
    await conn.execute(
        """CREATE TABLE apg (
            id INT8 PRIMARY KEY,
            name TEXT NOT NULL,
            score FLOAT8,
            price NUMERIC(10,2),
            tags TEXT[],
            nums INT8[],
            born DATE,
            at TIMESTAMPTZ,
            data BYTEA,
            doc JSONB,
            uid UUID,
            ok BOOL
        )"""
    )
    at = datetime.datetime(2023, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    await conn.executemany(
        "INSERT INTO apg (id, name, score, price, tags, nums, born, at, data, doc, uid, ok)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        [
            (1, "one", 1.5, decimal.Decimal("9.99"), ["a", "b"], [1, 2], datetime.date(2000, 1, 1),
             at, b"\x01", '{"k": 1}', uuid.UUID(int=1), True),
            (2, "two", None, None, [], [], None, None, None, None, None, None),
            (3, "three", -2.25, decimal.Decimal("-0.50"), [None, "x"], [None, 7],
             datetime.date(1999, 12, 31), at, b"", "[]", uuid.UUID(int=3), False),
        ],
    )
    rows = await conn.fetch("SELECT * FROM apg ORDER BY id")
    check(len(rows), 3, "row count")
    r1, r2, r3 = rows
    check(
        (r1["id"], r1["name"], r1["score"], r1["price"], r1["tags"], r1["nums"], r1["born"],
         r1["at"], r1["data"], json.loads(r1["doc"]), r1["uid"], r1["ok"]),
        (1, "one", 1.5, decimal.Decimal("9.99"), ["a", "b"], [1, 2], datetime.date(2000, 1, 1),
         at, b"\x01", {"k": 1}, uuid.UUID(int=1), True),
        "row 1",
    )
    check(
        tuple(r2.values()),
        (2, "two", None, None, [], [], None, None, None, None, None, None),
        "row 2",
    )
    check((r3["price"], r3["tags"], r3["nums"], r3["data"]),
          (decimal.Decimal("-0.50"), [None, "x"], [None, 7], b""), "row 3")
    check(await conn.fetchval("SELECT count(*) FROM apg WHERE id = ANY($1::INT8[])", [1, 3, 5]),
          2, "count with array param")
    status = await conn.execute("UPDATE apg SET score = $1 WHERE id > $2", 0.5, 1)
    check(status, "UPDATE 2", "update status")

    # Prepared statements.
    stmt = await conn.prepare("SELECT id, name, nums FROM apg WHERE id >= $1 ORDER BY id")
    attrs = stmt.get_attributes()
    check([a.name for a in attrs], ["id", "name", "nums"], "attribute names")
    check([a.type.name for a in attrs], ["int8", "text", "int8[]"], "attribute types")
    check([p.name for p in stmt.get_parameters()], ["int8"], "parameter types")
    got = [tuple(r) for r in await stmt.fetch(2)]
    check(got, [(2, "two", []), (3, "three", [None, 7])], "prepared fetch")
    check(await stmt.fetchval(3, column=1), "three", "prepared fetchval")
    check((await stmt.fetchrow(1))["nums"], [1, 2], "prepared fetchrow")

    # Errors map to asyncpg's exception classes, and the session goes on.
    try:
        await conn.execute("INSERT INTO apg (id, name) VALUES (1, 'dup')")
        raise AssertionError("unique violation expected")
    except asyncpg.UniqueViolationError as e:
        check(e.sqlstate, "23505", "unique violation sqlstate")
    try:
        await conn.execute("INSERT INTO apg (id) VALUES (9)")
        raise AssertionError("not-null violation expected")
    except asyncpg.NotNullViolationError as e:
        check(e.sqlstate, "23502", "not-null sqlstate")
    try:
        await conn.fetch("SELEC 1")
        raise AssertionError("syntax error expected")
    except asyncpg.PostgresSyntaxError as e:
        check(e.sqlstate, "42601", "syntax error sqlstate")
    try:
        await conn.fetch("SELECT * FROM no_such_table")
        raise AssertionError("undefined table expected")
    except asyncpg.UndefinedTableError:
        pass
    check(await conn.fetchval("SELECT count(*) FROM apg"), 3, "after errors")


async def transactions(conn):
    await conn.execute("DROP TABLE IF EXISTS apg_tx")
    await conn.execute("CREATE TABLE apg_tx (id INT8 PRIMARY KEY, v TEXT)")
    async with conn.transaction():
        await conn.execute("INSERT INTO apg_tx VALUES (1, 'kept')")
        check(conn.is_in_transaction(), True, "in transaction")
        try:
            async with conn.transaction():  # a savepoint
                await conn.execute("INSERT INTO apg_tx VALUES (2, 'rolled back')")
                raise RuntimeError("roll back the savepoint")
        except RuntimeError:
            pass
        async with conn.transaction():  # a savepoint that is released
            await conn.execute("INSERT INTO apg_tx VALUES (3, 'released')")
    check(conn.is_in_transaction(), False, "after commit")
    try:
        async with conn.transaction():
            await conn.execute("INSERT INTO apg_tx VALUES (4, 'lost')")
            await conn.execute("INSERT INTO apg_tx VALUES (1, 'duplicate')")
        raise AssertionError("unique violation expected")
    except asyncpg.UniqueViolationError:
        pass
    got = [tuple(r) for r in await conn.fetch("SELECT id, v FROM apg_tx ORDER BY id")]
    check(got, [(1, "kept"), (3, "released")], "transaction outcome")
    tr = conn.transaction(isolation="serializable")
    await tr.start()
    await conn.execute("INSERT INTO apg_tx VALUES (5, 'manual')")
    await tr.rollback()
    check(await conn.fetchval("SELECT count(*) FROM apg_tx WHERE id = 5"), 0, "manual rollback")


async def copies(conn):
    await conn.execute("DROP TABLE IF EXISTS apg_copy")
    await conn.execute(
        "CREATE TABLE apg_copy (id INT8 PRIMARY KEY, name TEXT, score FLOAT8, price NUMERIC,"
        " tags TEXT[], nums INT4[], at TIMESTAMPTZ, born DATE, uid UUID, data BYTEA, ok BOOL)"
    )
    at = datetime.datetime(2022, 3, 4, 5, 6, 7, 890000, tzinfo=datetime.timezone.utc)
    records = [
        (1, "tab\there", 1.25, decimal.Decimal("10.5"), ["x", None], [1, None, 3], at,
         datetime.date(2020, 2, 29), uuid.UUID(int=7), b"\x00\\", True),
        (2, None, None, None, None, None, None, None, None, None, None),
        (3, "", -0.0, decimal.Decimal("-123456789.000001"), [], [], at, datetime.date(1970, 1, 1),
         uuid.UUID(int=2**128 - 1), b"", False),
    ]
    status = await conn.copy_records_to_table("apg_copy", records=records)
    check(status, "COPY 3", "copy_records_to_table status")
    got = [tuple(r) for r in await conn.fetch("SELECT * FROM apg_copy ORDER BY id")]
    check(got, records, "rows copied in")
    # A subset of columns, in another order.
    status = await conn.copy_records_to_table(
        "apg_copy", records=[("four", 4), ("five", 5)], columns=["name", "id"]
    )
    check(status, "COPY 2", "copy with columns")
    check(
        [tuple(r) for r in await conn.fetch("SELECT id, name FROM apg_copy WHERE id > 3 ORDER BY id")],
        [(4, "four"), (5, "five")],
        "columns copied in",
    )
    # A bad row fails the whole COPY and the session goes on.
    try:
        await conn.copy_records_to_table("apg_copy", records=[(6, "six"), (1, "dup")],
                                         columns=["id", "name"])
        raise AssertionError("unique violation expected")
    except asyncpg.UniqueViolationError:
        pass
    check(await conn.fetchval("SELECT count(*) FROM apg_copy"), 5, "after failed copy")

    # COPY … TO STDOUT.
    chunks = []

    async def sink(data):
        chunks.append(bytes(data))

    status = await conn.copy_from_query(
        "SELECT id, name FROM apg_copy WHERE id <= $1 ORDER BY id", 2, output=sink
    )
    check(status, "COPY 2", "copy_from_query status")
    check(b"".join(chunks), b"1\ttab\\there\n2\t\\N\n", "copy_from_query text")
    chunks.clear()
    status = await conn.copy_from_table(
        "apg_copy", columns=["id", "ok"], output=sink, format="csv", header=True
    )
    check(status, "COPY 5", "copy_from_table status")
    lines = sorted(b"".join(chunks).decode().splitlines())
    check(lines, ["1,t", "2,", "3,f", "4,", "5,", "id,ok"], "copy_from_table csv")
    chunks.clear()
    await conn.copy_from_query("SELECT 1::INT4, 'a'::TEXT", output=sink, format="binary")
    check(
        b"".join(chunks),
        b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
        + b"\x00\x02" + b"\x00\x00\x00\x04\x00\x00\x00\x01" + b"\x00\x00\x00\x01a"
        + b"\xff\xff",
        "binary copy out",
    )


async def codecs(conn):
    await conn.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )
    check(await conn.fetchval("SELECT $1::JSONB", {"a": [1, 2]}), {"a": [1, 2]}, "jsonb codec")
    check(await conn.fetchval("SELECT '[true, null]'::JSONB"), [True, None], "jsonb codec out")


async def pool(url):
    p = await asyncpg.create_pool(url, min_size=1, max_size=3)
    try:
        for i in range(6):
            async with p.acquire() as conn:
                check(await conn.fetchval("SELECT $1::INT8", i), i, "pooled query")
                # Session state is reset when the connection goes back.
                await conn.execute("SET application_name = 'dirty'")
        async with p.acquire() as conn:
            check(await conn.fetchval("SHOW application_name"), "", "reset by the pool")

        async def work(i):
            async with p.acquire() as conn:
                async with conn.transaction():
                    return await conn.fetchval("SELECT $1::TEXT || $2::TEXT", "w", str(i))

        got = await asyncio.gather(*(work(i) for i in range(10)))
        check(got, [f"w{i}" for i in range(10)], "concurrent pool work")
        check(await p.fetchval("SELECT 5"), 5, "pool.fetchval")
    finally:
        await p.close()


async def main(url):
    conn = await asyncpg.connect(url)
    try:
        await scalars(conn)
        await arrays(conn)
        await tables(conn)
        await transactions(conn)
        await copies(conn)
        await codecs(conn)
    finally:
        await conn.close()
    await pool(url)
    print("asyncpg smoke: ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
