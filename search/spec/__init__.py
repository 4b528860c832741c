"""The study format: what a study is, as data (docs/method.md §4–§5, §9).

study (StudySpec, DatasetSpec, Recipe), space (one space: a preset plus overrides),
reference (a study's reference networks), recipe (dataset-aware defaults), text (the
bounded JSON/YAML reader), status (the enums), fidelity (the level plan) and learning (the
chance test). Pure: no database, no torch.
"""
