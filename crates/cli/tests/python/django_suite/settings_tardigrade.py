"""Django test-suite settings for a Tardigrade node (issue 13): the stock
PostgreSQL backend over psycopg 3. `run.py` sets TARDIGRADE_HOST and
TARDIGRADE_PORT; the suite creates and drops its test databases
(`test_djtests`, `test_djother`) itself."""

import os

_HOST = os.environ.get("TARDIGRADE_HOST", "127.0.0.1")
_PORT = int(os.environ.get("TARDIGRADE_PORT", "26257"))


def _db(name):
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": "root",
        "HOST": _HOST,
        "PORT": _PORT,
        "OPTIONS": {"sslmode": "disable"},
    }


DATABASES = {"default": _db("djtests"), "other": _db("djother")}
SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False
# Django's runner defaults to America/Chicago.
# TODO(issue 13): session time zones other than UTC.
TIME_ZONE = "UTC"
# Records each test's outcome for run.py (recording_runner.py).
TEST_RUNNER = "recording_runner.RecordingRunner"
