"""Django integration: the test runner, management commands and settings helpers."""

from ._databases import name_of_test_database, names_of_test_databases, server_url, vendor_of

__all__ = ["name_of_test_database", "names_of_test_databases", "server_url", "vendor_of"]
