"""`python -m gan_core ...`: see gan_core.cli."""

import sys

from .cli import main

sys.exit(main())
