"""Experiments: settings, evaluation, results store, analysis, report and the gmg CLI."""
