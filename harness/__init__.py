"""harness: sweeps of RL-on-LM trails under stale (off-policy) data, on an embedded CPU engine or AReaL."""

__version__ = "0.1.0"
