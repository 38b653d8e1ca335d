"""SQLAlchemy 2 (PostgreSQL dialect, psycopg 3) against Tardigrade: ORM
models with a relationship, create_all/drop_all, inserts and queries
through the ORM, a nested transaction (savepoint), and reflection of
tables, columns, primary keys, foreign keys, indexes, unique and check
constraints (SQLAlchemy's queries use set-returning functions in the select
list, regclass casts of parameters and pg_opclass), and of table and column
comments (COMMENT ON, pg_description).

    python3 sqlalchemy_smoke.py postgresql+psycopg://root@host:port/defaultdb

TODO(issue 13): alembic autogenerate.
"""
import sys
from sqlalchemy import create_engine, MetaData, Table, Column, Integer, String, ForeignKey, inspect, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, Session

url = sys.argv[1]
engine = create_engine(url)

class Base(DeclarativeBase):
    pass

# BIGINT keys: Tardigrade's INT is INT8, as in CockroachDB.
class Author(Base):
    __tablename__ = "sa_author"
    __table_args__ = {"comment": "People who write"}
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True, comment="Full name")
    books: Mapped[list["Book"]] = relationship(back_populates="author")

class Book(Base):
    __tablename__ = "sa_book"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    author_id: Mapped[int] = mapped_column(ForeignKey("sa_author.id"))
    author: Mapped[Author] = relationship(back_populates="books")

Base.metadata.drop_all(engine)
Base.metadata.create_all(engine)
with Session(engine) as s:
    a = Author(id=1, name="ann")
    a.books = [Book(id=1, title="t1"), Book(id=2, title="t2")]
    s.add(a)
    s.commit()
    got = s.scalars(select(Author).where(Author.name == "ann")).one()
    assert [b.title for b in sorted(got.books, key=lambda b: b.id)] == ["t1", "t2"]
    with s.begin_nested():
        s.add(Book(id=3, title="t3", author_id=1))
    s.commit()
insp = inspect(engine)
assert {"sa_author", "sa_book"} <= set(insp.get_table_names()), insp.get_table_names()
cols = [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns("sa_book")]
assert cols == [
    ("id", "BIGINT", False),
    ("title", "VARCHAR(100)", False),
    ("author_id", "BIGINT", False),
], cols
assert insp.get_pk_constraint("sa_book")["constrained_columns"] == ["id"]
fks = insp.get_foreign_keys("sa_book")
assert [(f["constrained_columns"], f["referred_table"], f["referred_columns"]) for f in fks] == [
    (["author_id"], "sa_author", ["id"])
], fks
assert insp.get_table_comment("sa_author") == {"text": "People who write"}
assert insp.get_table_comment("sa_book") == {"text": None}
comments = {c["name"]: c.get("comment") for c in insp.get_columns("sa_author")}
assert comments == {"id": None, "name": "Full name"}, comments
reflected = Table("sa_author", MetaData(), autoload_with=engine)
assert reflected.comment == "People who write", reflected.comment
assert reflected.c.name.comment == "Full name"
uniques = insp.get_unique_constraints("sa_author")
assert [u["column_names"] for u in uniques] == [["name"]], uniques
with engine.begin() as c:
    c.execute(text("CREATE INDEX sa_book_title_desc ON sa_book (title DESC)"))
    c.execute(text("ALTER TABLE sa_book ADD CONSTRAINT sa_book_id_check CHECK (id > 0)"))
indexes = {i["name"]: i for i in inspect(engine).get_indexes("sa_book")}
assert indexes["sa_book_title_desc"]["column_names"] == ["title"], indexes
assert indexes["sa_book_title_desc"]["column_sorting"] == {"title": ("desc",)}, indexes
checks = inspect(engine).get_check_constraints("sa_book")
assert [(c["name"], c["sqltext"]) for c in checks] == [("sa_book_id_check", "id > 0")], checks
with Session(engine) as s:
    titles = s.scalars(select(Book.title).order_by(Book.id)).all()
    assert titles == ["t1", "t2", "t3"], titles
Base.metadata.drop_all(engine)
print("sqlalchemy: ok")
