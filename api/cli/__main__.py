"""`python -m api.cli`: the `dse` command."""

from api.cli.parser import main

raise SystemExit(main())
