"""Evaluation: metrics, the aligned protocol, robustness grid, reports."""
