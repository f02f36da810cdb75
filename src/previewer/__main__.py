"""`python -m previewer` runs the command line."""

from __future__ import annotations

import sys

from previewer.launch import main

sys.exit(main())
