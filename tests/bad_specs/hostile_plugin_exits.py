"""A plugin that exits the process as it is imported."""

import sys

sys.exit(3)
