"""``python -m flinkcore`` is the ``flinkcore`` command."""

from flinkcore.cli import main

raise SystemExit(main())
