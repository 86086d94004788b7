"""Which test databases the runner and the plugin clear: pure, no server."""

from __future__ import annotations

import logging

import pytest

from sessionward.integrations.django import (
    TestDatabasePlan,
    end_test_database_sessions,
    plan_test_databases,
)

PG = {"ENGINE": "django.db.backends.postgresql", "HOST": "db", "PORT": "5432", "USER": "app"}
MYSQL = {"ENGINE": "django.db.backends.mysql", "HOST": "db", "PORT": "3306", "USER": "app"}


def test_the_test_database_and_its_parallel_clones():
    plan = plan_test_databases({"default": {**PG, "NAME": "shop"}}, parallel=2)

    (group,) = plan.groups
    assert group.aliases == ("default",)
    assert group.names == ("test_shop", "test_shop_1", "test_shop_2")
    # Never the test database itself: the maintenance database, then the main one.
    assert group.urls == ("postgresql://app@db:5432/postgres", "postgresql://app@db:5432/shop")


def test_parallel_one_makes_no_clones():
    plan = plan_test_databases({"default": {**PG, "NAME": "shop"}}, parallel=1)
    assert plan.names == ("test_shop",)


def test_mysql_connects_to_no_database():
    plan = plan_test_databases({"default": {**MYSQL, "NAME": "shop", "TEST": {"NAME": "ci"}}})
    (group,) = plan.groups
    assert group.names == ("ci",)
    assert group.urls == ("mysql://app@db:3306/",)


def test_mirrors_other_engines_and_unnamed_aliases_are_skipped():
    plan = plan_test_databases(
        {
            "default": {**PG, "NAME": "shop"},
            "replica": {**PG, "NAME": "shop", "TEST": {"MIRROR": "default"}},
            "cache": {"ENGINE": "django.db.backends.sqlite3", "NAME": "cache.db"},
            "service": {**PG, "NAME": ""},
        }
    )
    assert plan.names == ("test_shop",)
    assert plan.skipped == (
        "'replica' is a test mirror of 'default'",
        "'cache' uses 'django.db.backends.sqlite3'",
        "'service' names no database",
    )


def test_aliases_on_one_server_share_a_connection_and_names_are_deduplicated():
    plan = plan_test_databases(
        {
            "default": {**PG, "NAME": "shop"},
            "same": {**PG, "NAME": "shop"},
            "audit": {**PG, "NAME": "audit"},
        }
    )
    assert [(g.aliases, g.names) for g in plan.groups] == [
        (("default", "same"), ("test_shop",)),
        (("audit",), ("test_audit",)),
    ]


def test_only_the_aliases_a_run_sets_up():
    databases = {"default": {**PG, "NAME": "shop"}, "audit": {**PG, "NAME": "audit"}}
    assert plan_test_databases(databases, aliases={"audit": False}).names == ("test_audit",)


@pytest.mark.parametrize(
    "databases",
    [
        {"default": {**PG, "NAME": "shop", "TEST": {"NAME": "shop"}}},
        # Another alias's main database on the same server is just as untouchable.
        {"default": {**PG, "NAME": "shop"}, "old": {**PG, "NAME": "test_shop"}},
        # A clone name that is a main database.
        {"default": {**PG, "NAME": "shop", "TEST": {"NAME": "x"}}, "b": {**PG, "NAME": "x_1"}},
    ],
    ids=["test-name-is-main-name", "other-alias-main", "clone-is-main"],
)
def test_a_main_database_is_never_planned(databases):
    plan = plan_test_databases(databases, aliases=["default"], parallel=2)

    assert plan.groups == ()
    (refusal,) = plan.refusals
    assert refusal.startswith("sessionward: refusing to end sessions for alias 'default': ")
    assert "is the name of a main database" in refusal


def test_the_same_name_on_another_server_is_not_a_clash():
    databases = {
        "default": {**PG, "NAME": "shop"},
        "other": {**PG, "HOST": "db2", "NAME": "test_shop"},
    }
    assert plan_test_databases(databases, aliases=["default"]).names == ("test_shop",)


def test_refusals_are_reported_and_nothing_is_reached():
    lines: list[tuple[str, int]] = []
    plan = TestDatabasePlan(refusals=("sessionward: refusing …",))

    assert end_test_database_sessions(plan, report=lambda m, lvl: lines.append((m, lvl))) == ()
    assert lines == [("sessionward: refusing …", logging.ERROR)]


def test_an_unreachable_server_is_one_warning_line():
    lines: list[tuple[str, int]] = []
    plan = plan_test_databases(
        {"default": {**PG, "HOST": "127.0.0.1", "PORT": "1", "PASSWORD": "s3cret", "NAME": "shop"}}
    )

    assert end_test_database_sessions(plan, report=lambda m, lvl: lines.append((m, lvl))) == ()
    ((line, level),) = lines
    assert level == logging.WARNING
    assert line.startswith("sessionward: could not end leftover sessions on 'test_shop': ")
    assert "s3cret" not in line
    assert "\n" not in line
