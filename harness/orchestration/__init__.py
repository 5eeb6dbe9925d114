"""A sweep's life: launching its trails on a backend, watching them, the progress display, status and the end."""
