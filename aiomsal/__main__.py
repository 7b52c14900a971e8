"""``python -m aiomsal``: the demo and the token command (see ``--help``)."""

from ._cli import main

raise SystemExit(main())
