import pytest

from tests.fix_servers import Server
from tests.integrations.django_project import DjangoProject

# The Django project under tests/integrations/django/project is run by the tests
# in subprocesses; it is not a test module itself.
collect_ignore = ["django/project"]


@pytest.fixture
def django_project(server: Server) -> DjangoProject:
    """The test project on each server in turn (each PostgreSQL, then MariaDB)."""
    return DjangoProject(server, server.create_database())
