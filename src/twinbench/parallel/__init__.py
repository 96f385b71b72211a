"""The parallel suite behind ``twinbench parallel``."""
