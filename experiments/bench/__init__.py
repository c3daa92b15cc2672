"""``gmg bench``: the registry (``run``) and one module per benchmark."""
