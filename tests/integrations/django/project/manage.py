#!/usr/bin/env python
"""The test project's manage.py; its settings come from SW_DJANGO_* variables."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "swproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
