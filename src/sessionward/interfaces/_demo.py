"""``sessionward demo``: a guided tour on a throwaway PostgreSQL (placeholder)."""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--keep", is_flag=True, help="Leave the server running and print its URL.")
def demo_command(keep: bool) -> None:
    """Start a throwaway PostgreSQL, stage a mess, and clean it up step by step."""
    raise click.ClickException("the demo is not built yet")
