"""`python -m llmdocs`: the `llmdocs` command (see `llmdocs.cli`)."""

from llmdocs.cli import main

if __name__ == "__main__":  # not on import (the doctest collector imports every module)
    raise SystemExit(main())
