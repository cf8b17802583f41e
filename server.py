"""Sundial's entry point: ``python server.py [all|scheduler|worker|api|migrate|jobs|runs|events]``."""

from sundial.cli import main

if __name__ == "__main__":
    main(prog_name="server.py")
