"""The answers of a study, from its trials (docs/method.md §6–§8).

statistics (EDFs, KS tests, bootstrap best ranges, rank correlation), normalize (NDS
complexity bins and weights), fits (the RegNet fits of a study's networks), suggestions (the
refinements the evidence supports), markers (the reference networks' lines and percentiles)
and results (a study's whole answer). Numbers are pure functions of arrays; only `results`
reads a store.
"""
