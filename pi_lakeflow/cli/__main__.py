"""``python -m pi_lakeflow.cli``: the console script."""

import sys

from pi_lakeflow.cli import main

sys.exit(main())
