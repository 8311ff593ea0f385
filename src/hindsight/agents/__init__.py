"""Learning agents (SAC)."""
