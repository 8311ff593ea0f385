"""A plugin that does not parse."""

def broken(:
    pass
