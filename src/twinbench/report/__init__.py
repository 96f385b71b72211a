"""Reports built from the results store alone: they never import torch or jax."""
