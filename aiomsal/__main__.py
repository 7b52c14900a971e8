"""``python -m aiomsal``: the demo and the token command (see ``--help``)."""

from ._cli._commands import main

raise SystemExit(main())
