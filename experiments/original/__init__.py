"""The original study's released agents and evaluation results (train-procgen checkpoints and
per-episode CSVs, Zenodo record 10200914) as gmg agent folders and results stores:
``agents.import_original`` (``gmg import original``), ``results.import_original_results`` and
``results.compare_with_original`` (``gmg import original-results``)."""
