"""python -m specbench.compare: see the package docstring (``--help``)."""

import sys

from specbench.compare import main

sys.exit(main())
