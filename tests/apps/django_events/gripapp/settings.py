"""Settings of the test Django project; the GRIP part comes from $GRIPAPP_CONFIG (see server.py)."""

import json
import os

_conf = json.loads(os.environ["GRIPAPP_CONFIG"])

DEBUG = False
SECRET_KEY = _conf.get("secret_key", "holdfast-test-django-secret-key-0123456789abcdef")
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "gripapp.urls"
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_eventstream",
]

MIDDLEWARE = [
    # Parses Grip-Sig (valid only if signed by one of GRIP_PROXIES' keys), Grip-Last,
    # WebSocket-over-HTTP events, and turns request.grip.instruct into Grip-* headers.
    "django_grip.GripMiddleware",
    "gripapp.middleware.RequireProxy",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _conf["db"],
        # Requests run on several threads (Django's ASGI handler): writers take the lock up
        # front (no "database is locked" on a read-to-write upgrade) and wait for it; WAL lets
        # readers go on meanwhile.
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        },
    }
}

# Every proxy gets every publish (django-grip publishes to all of them): one app can sit behind
# Pushpin and holdfast at once. An entry's "key" is also the Grip-Sig verification key, and with
# "control_iss" the publishes carry a Bearer JWT (iss, exp) signed with it.
GRIP_PROXIES = _conf["grip_proxies"]

# Events are stored (ids, Last-Event-ID recovery, Grip-Link rel=next with prev-id).
EVENTSTREAM_STORAGE_CLASS = "django_eventstream.storage.DjangoModelStorage"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": os.environ.get("GRIPAPP_LOG_LEVEL", "WARNING").upper()},
}
