"""The on-disk record: sweep and run directories, journals, status, locks, and the safe file access under them."""
