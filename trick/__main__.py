"""`python -m trick ...` is `trickc ...`."""

from .cli import main

raise SystemExit(main())
