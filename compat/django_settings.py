"""Settings for Django's own test suite (``tests/runtests.py --settings``).

Which server and whether sessionward is plugged in come from the environment,
set by ``compat/run.py``: ``COMPAT_SERVER`` (``postgresql`` or ``mysql``),
``COMPAT_DB_HOST``/``PORT``/``USER``/``PASSWORD``, and ``COMPAT_SESSIONWARD``
(``1`` for our ENGINE and TEST_RUNNER, else Django's).
"""

import os

SERVER = os.environ["COMPAT_SERVER"]
WITH_SESSIONWARD = os.environ.get("COMPAT_SESSIONWARD") == "1"
# Plain and with-sessionward runs use their own databases, so a leftover of
# one run never meets the other, nor any other suite on the same servers.
RUN = "sw" if WITH_SESSIONWARD else "plain"

_SERVER = {
    "HOST": os.environ["COMPAT_DB_HOST"],
    "PORT": os.environ["COMPAT_DB_PORT"],
    "USER": os.environ["COMPAT_DB_USER"],
    "PASSWORD": os.environ["COMPAT_DB_PASSWORD"],
}
_ENGINE = ("sessionward." if WITH_SESSIONWARD else "") + f"django.db.backends.{SERVER}"


def _database(alias: str) -> dict[str, object]:
    name = f"sw_compat_{RUN}_{alias}"
    return {
        "ENGINE": _ENGINE,
        "NAME": name,
        **_SERVER,
        "TEST": {"NAME": f"test_{name}"},
    }


DATABASES = {"default": _database("default"), "other": _database("other")}
# sessionward.django.TestRunner (or Django's DiscoverRunner), plus a result
# class that writes each test's outcome for the comparison.
TEST_RUNNER = "django_runner." + ("SessionwardRunner" if WITH_SESSIONWARD else "PlainRunner")

SECRET_KEY = "django_tests_secret_key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False
