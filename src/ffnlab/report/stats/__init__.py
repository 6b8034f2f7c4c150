"""Paired t-tests, Holm's correction and power: the statistics of a comparison."""
