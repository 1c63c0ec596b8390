"""Evaluation harness: scoring functions and readers for the benchmark data sets."""
