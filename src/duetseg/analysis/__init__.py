"""Analyses of finished runs shared by the benchmark scripts and the results page.

- :mod:`duetseg.analysis.archive`: the few small files of an evaluated run kept in the
  repository, so a report can be rebuilt without the run folder.
- :mod:`duetseg.analysis.missing`: Dice with a modality missing at prediction.
- :mod:`duetseg.analysis.records`: benchmark result records (JSON) and their Markdown.
- :mod:`duetseg.analysis.accuracy`: the accuracy, ablation and missing-modality sections.
- :mod:`duetseg.analysis.page`: the whole results page (``BENCHMARKS.md``).
"""
