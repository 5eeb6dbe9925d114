"""What a sweep is: the axes, the config tree and its composition, validation, sweep files, and trail identity."""
