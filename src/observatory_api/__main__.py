"""`python -m observatory_api` is the CLI."""

from observatory_api.cli import main

raise SystemExit(main())
