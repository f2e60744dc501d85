"""`python -m daemon` is the `incidencias` command."""

from daemon.cli import main

raise SystemExit(main())
