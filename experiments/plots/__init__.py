"""Static figures (matplotlib, through ``plots.style``), by topic."""
