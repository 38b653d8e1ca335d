"""Django settings for django_smoke.py: the database comes from TARDIGRADE_URL
(postgresql://user@host:port/dbname)."""
import os
from urllib.parse import urlparse

_url = urlparse(os.environ["TARDIGRADE_URL"])
SECRET_KEY = "django-smoke-test"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "shop"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/") or "defaultdb",
        "USER": _url.username or "root",
        "HOST": _url.hostname,
        "PORT": str(_url.port or 26257),
    }
}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
