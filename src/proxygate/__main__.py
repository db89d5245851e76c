"""``python -m proxygate``: the same command as the ``proxygate`` console script."""

from proxygate.cli import main

raise SystemExit(main())
