"""``python -m qsysd``: the same as the ``qsysd`` command."""

from qsysd.cli import main

raise SystemExit(main())
