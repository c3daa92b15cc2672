"""The HTML report of a run: the page, its findings, its interactive figures, and the dossiers."""
