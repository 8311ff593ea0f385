"""A plugin whose own import is missing."""

import hostile_no_such_dependency  # noqa: F401
