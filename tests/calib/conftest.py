"""Fixtures of the calibration tests: ``fp16_bundle`` (the tiny bundle they calibrate) and ``cli``
are in tests/conftest.py."""
