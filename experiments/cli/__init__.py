"""The ``gmg`` command: ``main`` and one module per group of verbs, each a thin shell over a library function."""
