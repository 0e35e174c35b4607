"""Thin shim: `python main.py VERB` is the installed `groupsync VERB` console script."""

import sys

from core.cli import main

if __name__ == "__main__":
    sys.exit(main())
