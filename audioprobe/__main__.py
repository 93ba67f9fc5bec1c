"""`python -m audioprobe` is the `audioprobe` command."""

import sys

from audioprobe.cli import main

sys.exit(main())
