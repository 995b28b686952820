"""Experiments that reproduce the paper's tables and figures.

``python -m minisriem.experiments.reproduce`` runs every training and
baseline run that Table 2, Fig. 2, Fig. 3 and Table 3 need, resumably, and
writes ``docs/REPRODUCTION.md`` from the recorded results
(:mod:`minisriem.experiments.reproduce`; the page itself is rendered by
:mod:`minisriem.experiments.page`).
"""
