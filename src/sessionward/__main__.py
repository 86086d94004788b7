"""``python -m sessionward`` runs the command line."""

from .interfaces.cli import main

if __name__ == "__main__":
    main()
