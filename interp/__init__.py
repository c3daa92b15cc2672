"""Interpretability: hook points, channel interventions, patching, attributions, reliance."""
