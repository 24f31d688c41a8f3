"""`python -m backdoorlab` (and `torchrun ... -m backdoorlab run CONFIG`) runs the CLI."""

import sys

from backdoorlab.cli import main

sys.exit(main())
