"""A trained policy in use: tasks chosen in the family's own terms, evaluation on them, export."""
