"""Quantification: calibration, decay, SUV, VOI and lesion measures."""
