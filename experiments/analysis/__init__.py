"""Analyses across a population: regression, outliers, populations compared."""
