"""PredictionWriter (project/lit/callbacks.py), the CSV that ``predict`` leaves: exact rows and
columns.

The end-to-end tests (tests/test_cli.py, tests/test_reports.py) run ``predict`` for real and check
each path's prediction against a one-image-per-batch run. These call the writer itself with what
ClassifierModule.predict_step returns (paths, top classes best first, their probabilities), so the
file's exact text is pinned and ``make mutation`` sees any change in seconds. The trainer stands in
as the few attributes the writer reads. Run alone:
``.venv/bin/python -m pytest tests/test_prediction_writer.py``
"""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
import torch

from project.lit.callbacks import PredictionWriter

CLASSES = ["cat", "dog", "fox", "owl", "yak", "emu", "elk"]


def trainer(log_dir, world_size: int = 1, global_rank: int = 0, classes=CLASSES):
    return SimpleNamespace(
        log_dir=None if log_dir is None else str(log_dir),
        world_size=world_size,
        global_rank=global_rank,
        datamodule=SimpleNamespace(class_names=classes),
    )


def batch(paths, probabilities) -> dict:
    """What predict_step returns for these images: the classes sorted by probability."""
    top = torch.tensor(probabilities).topk(min(5, len(probabilities[0])), dim=1)
    return {"paths": list(paths), "top_classes": top.indices, "top_probabilities": top.values}


PREDICTIONS = [
    batch(
        ["a.png", "b.png"],
        [[0.1, 0.6, 0.05, 0.04, 0.12, 0.05, 0.04], [0.02, 0.03, 0.05, 0.7, 0.1, 0.04, 0.06]],
    ),
    batch(["c.png"], [[0.3, 0.05, 0.04, 0.06, 0.03, 0.27, 0.25]]),
]


def rows(path) -> list[list[str]]:
    with open(path, newline="") as file:
        return list(csv.reader(file))


def write(tmp_path, top_k=1, predictions=PREDICTIONS, **trainer_args):
    writer = PredictionWriter(top_k=top_k)
    writer.write_on_epoch_end(trainer(tmp_path, **trainer_args), None, predictions, [[0, 1], [2]])
    return tmp_path / "predictions.csv"


def test_one_row_per_image_in_order_with_the_class_name_and_its_probability(tmp_path):
    assert rows(write(tmp_path)) == [
        ["path", "predicted", "probability"],
        ["a.png", "dog", "0.600000"],
        ["b.png", "owl", "0.700000"],
        ["c.png", "cat", "0.300000"],
    ]


def test_top_k_adds_the_next_classes_best_first(tmp_path):
    assert rows(write(tmp_path, top_k=3)) == [
        ["path", "predicted", "probability", "top2", "probability2", "top3", "probability3"],
        ["a.png", "dog", "0.600000", "yak", "0.120000", "cat", "0.100000"],
        ["b.png", "owl", "0.700000", "yak", "0.100000", "elk", "0.060000"],
        ["c.png", "cat", "0.300000", "emu", "0.270000", "elk", "0.250000"],
    ]


def test_top_k_stops_at_five_columns(tmp_path):
    header, first, *_ = rows(write(tmp_path, top_k=9))
    assert header[-2:] == ["top5", "probability5"] and len(header) == 3 + 2 * 4
    assert len(first) == len(header)


def test_top_k_stops_at_the_number_of_classes(tmp_path):
    two_classes = [batch(["a.png"], [[0.25, 0.75]])]
    assert rows(write(tmp_path, top_k=4, predictions=two_classes, classes=["no", "yes"])) == [
        ["path", "predicted", "probability", "top2", "probability2"],
        ["a.png", "yes", "0.750000", "no", "0.250000"],
    ]


def test_each_process_writes_its_own_file_under_ddp(tmp_path):
    write(tmp_path, world_size=2, global_rank=1)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["predictions-rank1.csv"]
    assert rows(tmp_path / "predictions-rank1.csv")[1] == ["a.png", "dog", "0.600000"]


def test_a_given_output_file_is_written_in_a_new_folder(tmp_path):
    output = tmp_path / "out" / "today" / "digits.csv"
    PredictionWriter(output_file=str(output)).write_on_epoch_end(
        trainer(tmp_path / "logs"), None, PREDICTIONS, []
    )
    assert rows(output)[0] == ["path", "predicted", "probability"]  # top_k=1 by default
    assert len(rows(output)) == 4
    assert not (tmp_path / "logs").exists()


def test_without_a_log_folder_the_file_goes_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    PredictionWriter().write_on_epoch_end(trainer(None), None, PREDICTIONS, [])
    assert len(rows(tmp_path / "predictions.csv")) == 4


def test_the_file_has_plain_line_ends(tmp_path):
    text = write(tmp_path).read_bytes()
    assert text.count(b"\r\n") == 4 and b"\r\r" not in text


def test_a_batch_whose_columns_disagree_is_an_error(tmp_path):
    broken = batch(["a.png", "b.png"], [[0.5, 0.5, 0, 0, 0, 0, 0]])
    with pytest.raises(ValueError):
        write(tmp_path, predictions=[broken])


def test_the_written_path_is_announced(tmp_path, monkeypatch):
    announced = []
    monkeypatch.setattr("project.lit.callbacks.rank_zero_info", announced.append)
    path = write(tmp_path)
    assert announced == [f"predictions written to {path}"]
