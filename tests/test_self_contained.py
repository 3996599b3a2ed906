"""The package is self-contained: no default path outside it, clear errors when a folder is missing."""

import os
import re

import pytest

from ric_ext import data as data_mod
from ric_ext.batching import batch_slices
from ric_ext.checks import check_int
from ric_ext.models import load_classifier

PACKAGE = os.path.join(os.path.dirname(__file__), "..", "ric_ext")


def test_no_package_source_points_at_the_workspace_folders():
    pattern = re.compile(r"\.\./shared|[\"']\.\.[\"'],\s*[\"']shared[\"']|SPEC\.md")
    hits = []
    for root, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith((".py", ".md")):
                with open(os.path.join(root, f)) as fh:
                    hits += [f"{f}: {line.strip()}" for line in fh if pattern.search(line)]
    assert hits == []


def test_missing_data_folder_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("RIC_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="pass --data DIR.*RIC_DATA"):
        data_mod.svhn("train")
    with pytest.raises(FileNotFoundError, match="data folder not found: .*nowhere.*--data"):
        data_mod.svhn("train", tmp_path / "nowhere")
    monkeypatch.setenv("RIC_DATA", str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match="from RIC_DATA"):
        data_mod.cifar10()


def test_classifiers_without_a_models_folder(monkeypatch):
    monkeypatch.delenv("RIC_MODELS", raising=False)
    assert load_classifier("svhn").input_size == 32  # bundled
    with pytest.raises(FileNotFoundError, match="not bundled, and no models folder was given.*RIC_MODELS"):
        load_classifier("cifar10-resnet20")


def test_check_int_names_the_argument():
    assert check_int("n", 3, 1) == 3
    for bad in (0, True, 2.0, "3", None):
        with pytest.raises(ValueError, match=r"^n must be an int >= 1, got"):
            check_int("n", bad, 1)
    with pytest.raises(ValueError, match=r"bit must be an int in \[0, 8\)"):
        check_int("bit", 8, 0, 8)


def test_batch_slices_cover_every_row_once():
    assert [(s.start, s.stop) for s in batch_slices(7, 3)] == [(0, 3), (3, 6), (6, 7)]
    assert list(batch_slices(0, 4)) == []
    with pytest.raises(ValueError, match="size"):
        list(batch_slices(5, 0))
