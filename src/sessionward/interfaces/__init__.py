"""Interfaces on top of the API: the ``sessionward`` command line and the demo."""
