"""Measurement harness: timing statistics and helpers."""
