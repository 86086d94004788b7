"""One public import path per integration; the old ``sessionward.integrations.*`` one
still works, with a ``DeprecationWarning`` naming the new one."""

from __future__ import annotations

import importlib

import pytest

DRIVERS = ["psycopg", "psycopg2", "pymysql", "mysqlclient"]


@pytest.mark.parametrize("name", DRIVERS)
def test_the_old_path_warns_and_gives_the_same_objects(name: str) -> None:
    public = importlib.import_module(f"sessionward.{name}")
    old = importlib.import_module(f"sessionward.integrations.{name}")
    assert public.__all__
    for member in public.__all__:
        with pytest.warns(DeprecationWarning, match=f"import from sessionward.{name}"):
            assert getattr(old, member) is getattr(public, member)


@pytest.mark.parametrize("name", DRIVERS)
def test_the_public_path_imports_without_a_warning(name: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = importlib.reload(importlib.import_module(f"sessionward.{name}"))
    assert module.__all__


def test_an_unknown_name_on_the_old_path_is_an_attribute_error() -> None:
    old = importlib.import_module("sessionward.integrations.psycopg")
    with pytest.raises(AttributeError):
        old.no_such_name  # noqa: B018
