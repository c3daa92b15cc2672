"""Linear probes: activation datasets, probes and their controls."""
