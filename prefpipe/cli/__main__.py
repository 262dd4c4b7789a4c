"""`python -m prefpipe.cli`: the same as the `prefpipe` command."""

import sys

from prefpipe.cli import main

sys.exit(main())
