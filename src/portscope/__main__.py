"""``python -m portscope``: the command-line interface."""

import sys

from portscope.cli import main

sys.exit(main())
