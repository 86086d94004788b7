"""Two test classes, so that ``--parallel 2`` really starts two processes with two clones."""

from django.db import connection
from django.test import TestCase

from .models import Note


class NoteTests(TestCase):
    def test_saves_a_note(self):
        Note.objects.create(text="hello")
        assert Note.objects.count() == 1


class DatabaseNameTests(TestCase):
    def test_runs_on_a_test_database(self):
        Note.objects.create(text="where")
        assert connection.settings_dict["NAME"].startswith("test_")
