"""Reporting: the summary of a run, comparisons of finished runs, and figures."""
