"""The analysis registry: metrics keyed by analysis name, plots by plot name, and no plot written twice."""

import pandas as pd
import pytest

from keeptrash.analysis import registry
from keeptrash.analysis.registry import AnalysisResult, run_analyses


def test_metrics_by_analysis_name_and_plots_by_plot_name(monkeypatch):
    monkeypatch.setattr(registry, "ANALYSES", {
        "first": lambda context: AnalysisResult({"value": context}, {"a": pd.DataFrame({"x": [1]})}),
        "second": lambda context: AnalysisResult({}),
    })
    metrics, plots = run_analyses(7)
    assert metrics == {"first": {"value": 7}, "second": {}}
    assert list(plots) == ["a"]


def test_two_analyses_writing_one_plot_is_refused(monkeypatch):
    monkeypatch.setattr(registry, "ANALYSES", {
        "first": lambda context: AnalysisResult({}, {"shared": pd.DataFrame()}),
        "second": lambda context: AnalysisResult({}, {"shared": pd.DataFrame()}),
    })
    with pytest.raises(ValueError, match="'second' writes plot 'shared'"):
        run_analyses(None)
