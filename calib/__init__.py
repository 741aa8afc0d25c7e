"""Calibration data and INT8 (Q/DQ) quantisation."""
