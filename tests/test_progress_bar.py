"""ThrottledProgressBar (project/lit/callbacks.py) overrides ``_should_update``, a private method of
Lightning's TQDMProgressBar: this test fails when Lightning renames it or stops calling it from
its batch hooks, instead of the bar silently redrawing after every batch again."""

from __future__ import annotations

import inspect

from lightning.pytorch.callbacks import TQDMProgressBar

from project.lit.callbacks import ThrottledProgressBar


def test_lightning_still_asks_should_update_from_every_batch_hook():
    parameters = list(inspect.signature(TQDMProgressBar._should_update).parameters)
    assert parameters == ["self", "current", "total"]
    for hook in ("on_train_batch_end", "on_validation_batch_end", "on_test_batch_end"):
        assert "self._should_update(" in inspect.getsource(getattr(TQDMProgressBar, hook)), hook


def test_the_bar_redraws_at_most_every_min_seconds_and_at_the_end(monkeypatch):
    clock = iter([0.0, 0.1, 0.2, 0.7, 0.8])
    monkeypatch.setattr("project.lit.callbacks.time.monotonic", lambda: next(clock))
    bar = ThrottledProgressBar(min_seconds=0.5)
    drawn = [bar._should_update(n, 10) for n in (1, 2, 3, 4)]
    assert drawn == [True, False, False, True]  # at 0.0, then 0.7 (0.5 s later)
    assert bar._should_update(10, 10)  # the last batch always
