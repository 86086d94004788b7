"""Integrations with client libraries (SQLAlchemy, Django, psycopg, pytest): to come."""
