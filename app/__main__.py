"""`python -m app ...`: run, migrate and manage the service."""

from app.cli import main

raise SystemExit(main())
