"""Training and evaluation commands (``train``, ``eval``)."""
