"""Built-in workloads: one folder each, holding the spec and the two twins side by side."""
