"""`python -m tests.probe [--quick] [--webhooks N] ...`: see run.py."""

import sys

from tests.probe.run import main

sys.exit(main())
