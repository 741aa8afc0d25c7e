"""Runtime commands (``run``, ``bench``)."""
