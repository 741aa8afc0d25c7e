"""Export commands (``export``, ``scenes``)."""
