"""Trustworthy answers: applicability domain, forward verification, intervals (ensembles, calibration), explanations."""
