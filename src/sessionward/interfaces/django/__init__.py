"""Django management commands ``sessions`` and ``endsessions``: the CLI inside ``manage.py``."""
