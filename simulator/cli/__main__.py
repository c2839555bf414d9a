"""`python -m partnerkit.simulator.cli`: the `partnersim` command."""

import sys

from partnerkit.simulator.cli import main

sys.exit(main())
