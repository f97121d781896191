"""``python -m app``: the `lookalike` program (app.entry)."""

import sys

from app.entry import main

sys.exit(main())
