"""Django (PostgreSQL backend, psycopg 3) against Tardigrade: makemigrations
and migrate (contenttypes, auth and a small app: identity columns, ALTER
COLUMN TYPE, constraint introspection), bulk_create (unnest of several
arrays), annotate with GROUP BY the primary key, JSON lookups, nested
atomic() blocks (savepoints) and .iterator() (a server-side cursor).

    python3 django_smoke.py postgresql://root@host:port/defaultdb

Exits non-zero (with a traceback) on the first mismatch.
"""
import os
import shutil
import sys
from decimal import Decimal

here = os.path.dirname(os.path.abspath(__file__))
os.environ["TARDIGRADE_URL"] = sys.argv[1]
os.environ["DJANGO_SETTINGS_MODULE"] = "settings"
sys.path.insert(0, here)
shutil.rmtree(os.path.join(here, "shop", "migrations"), ignore_errors=True)

import django  # noqa: E402

django.setup()
from django.core.management import call_command  # noqa: E402
from django.db import IntegrityError, transaction  # noqa: E402
from django.db.models import Count, Sum  # noqa: E402

try:
    call_command("makemigrations", "shop", verbosity=0)
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import Permission, User  # noqa: E402
    from shop.models import Author, Book  # noqa: E402

    assert Permission.objects.filter(codename="add_book").exists()
    user = User.objects.create_user("ann", password="secret")
    assert User.objects.get(pk=user.pk).check_password("secret")

    a = Author.objects.create(name="ann", data={"tags": ["x", "y"], "n": 1})
    Author.objects.create(name="bob", data={"tags": ["z"], "n": 2})
    Book.objects.bulk_create(
        [Book(author=a, title="t%d" % i, price=Decimal(i) + Decimal("0.5")) for i in range(3)]
    )
    got = list(
        Author.objects.annotate(n=Count("books"), total=Sum("books__price"))
        .order_by("name")
        .values("name", "n", "total")
    )
    assert got == [
        {"name": "ann", "n": 3, "total": Decimal("4.50")},
        {"name": "bob", "n": 0, "total": None},
    ], got
    assert Author.objects.filter(data__tags__contains=["x"]).count() == 1
    assert Author.objects.filter(data__n=2).get().name == "bob"

    try:
        with transaction.atomic():
            Book.objects.create(author=a, title="rolled back", price=1)
            with transaction.atomic():
                Author.objects.create(name="ann")
        raise AssertionError("the duplicate was accepted")
    except IntegrityError:
        pass
    with transaction.atomic():
        Book.objects.create(author=a, title="kept", price=1)
        try:
            with transaction.atomic():
                Author.objects.create(name="ann")
            raise AssertionError("the duplicate was accepted")
        except IntegrityError:
            pass
    titles = list(Book.objects.order_by("-price", "title").values_list("title", flat=True))
    assert titles == ["t2", "t1", "kept", "t0"], titles
    assert [b.title for b in Book.objects.order_by("id").iterator(chunk_size=2)] == [
        "t0", "t1", "t2", "kept"
    ]
    Book.objects.filter(price__lt=1).update(price=Decimal("0.75"))
    assert Book.objects.get(title="t0").price == Decimal("0.75")
    Author.objects.filter(name="ann").delete()
    assert Book.objects.count() == 0
finally:
    shutil.rmtree(os.path.join(here, "shop", "migrations"), ignore_errors=True)
print("django: ok")
