"""`python -m codex_cloud` runs the CLI."""

import sys

from codex_cloud.cli import main

sys.exit(main())
