"""A small real Django project for sessionward's tests, configured by environment variables.

- ``SW_DJANGO_ENGINE``: ``postgresql`` or ``mysql`` (MariaDB/MySQL through PyMySQL)
- ``SW_DJANGO_DRIVER``: ``mysqlclient`` for MariaDB/MySQL through the real ``MySQLdb``
- ``SW_DJANGO_ENGINE_PACKAGE``: ``sessionward.django`` for sessionward's ``ENGINE``
- ``SW_DJANGO_NAME``, ``SW_DJANGO_HOST``, ``SW_DJANGO_PORT``, ``SW_DJANGO_USER``,
  ``SW_DJANGO_PASSWORD``: the main database
- ``SW_DJANGO_TEST_RUNNER``: the ``TEST_RUNNER`` (Django's own by default)
- ``SW_DJANGO_LOCK_WAIT_SECONDS``: MariaDB/MySQL ``lock_wait_timeout`` of Django's
  sessions, so a ``DROP DATABASE`` stuck on a metadata lock fails fast
"""

import os

ENGINE = os.environ["SW_DJANGO_ENGINE"]

OPTIONS: dict[str, object] = {}
if ENGINE == "mysql":
    if os.environ.get("SW_DJANGO_DRIVER") != "mysqlclient":
        import pymysql

        # Django asks for mysqlclient >= 2.2.1; PyMySQL stands in for it.
        pymysql.version_info = (2, 2, 1, "final", 0)
        pymysql.install_as_MySQLdb()
    init = ["SESSION sql_mode = 'STRICT_TRANS_TABLES'"]
    if os.environ.get("SW_DJANGO_LOCK_WAIT_SECONDS"):
        init.append(f"SESSION lock_wait_timeout = {int(os.environ['SW_DJANGO_LOCK_WAIT_SECONDS'])}")
    OPTIONS["init_command"] = "SET " + ", ".join(init)

DATABASES = {
    "default": {
        "ENGINE": f"{os.environ.get('SW_DJANGO_ENGINE_PACKAGE', 'django')}.db.backends.{ENGINE}",
        "NAME": os.environ["SW_DJANGO_NAME"],
        "HOST": os.environ.get("SW_DJANGO_HOST", ""),
        "PORT": os.environ.get("SW_DJANGO_PORT", ""),
        "USER": os.environ.get("SW_DJANGO_USER", ""),
        "PASSWORD": os.environ.get("SW_DJANGO_PASSWORD", ""),
        "OPTIONS": OPTIONS,
    }
}

TEST_RUNNER = os.environ.get("SW_DJANGO_TEST_RUNNER", "django.test.runner.DiscoverRunner")
INSTALLED_APPS = ["notes", "sessionward.django"]
SECRET_KEY = "sessionward-tests-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "swproject.urls"
