"""Django database engines: ``sessionward.django.db.backends.postgresql`` and ``.mysql``."""
