"""``python -m effgen``: the ``effgen`` command."""
import sys

from effgen.commands import main

sys.exit(main())
