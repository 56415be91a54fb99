"""The latent maps figure: one panel per run, one legend entry per class, every run's points kept."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from dashboard import latent


def fake_panel(classes: list[str], order) -> dict:
    xy = np.arange(2 * len(classes), dtype=float).reshape(-1, 2)
    return {
        "xy": xy,
        "axes": ("PC1", "PC2"),
        "classes": np.asarray(classes),
        "order": order,
        "pictures": [],
        "span": 1.0,
    }


def test_each_run_gets_a_panel_and_no_point_is_lost_between_datasets(monkeypatch):
    panels = {
        "mnist": fake_panel(["0", "1", "1", "2"], ["0", "1", "2"]),
        "folder": fake_panel(["?", "?"], None),  # a run on unlabelled data
    }
    monkeypatch.setattr(latent, "map_panel", lambda run, method, thumbnails: panels[run.name])
    runs = tuple(SimpleNamespace(name=name, label=f"{name} run") for name in panels)
    figure = latent.maps_figure.__wrapped__(runs, "PCA", False)
    assert sum(len(trace.x) for trace in figure.data) == 4 + 2
    assert [(trace.xaxis, trace.name, len(trace.x)) for trace in figure.data] == [
        ("x", "0", 1),
        ("x", "1", 2),
        ("x", "2", 1),
        ("x2", "?", 2),
    ]
    assert all(trace.showlegend for trace in figure.data)  # each class once in the legend
    assert [note.text for note in figure.layout.annotations] == ["mnist run", "folder run"]


def test_a_class_in_several_panels_has_one_legend_entry(monkeypatch):
    monkeypatch.setattr(latent, "map_panel", lambda run, method, thumbnails: fake_panel(["0", "1"], ["0", "1"]))
    runs = tuple(SimpleNamespace(name=name, label=name) for name in ("a", "b", "c", "d"))
    figure = latent.maps_figure.__wrapped__(runs, "PCA", False)
    assert [trace.name for trace in figure.data if trace.showlegend] == ["0", "1"]
    assert {trace.xaxis for trace in figure.data} == {"x", "x2", "x3", "x4"}  # four panels, two rows of three
    assert figure.layout.height == 110 + 420 * 2
