"""The report as people read it: tables, plots and comparison.md."""
