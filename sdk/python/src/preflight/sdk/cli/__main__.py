"""`python -m preflight.sdk.cli`: the `preflight` command."""

import sys

from preflight.sdk.cli import main

sys.exit(main())
