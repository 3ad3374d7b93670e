"""Shared fixtures: where the Caffe golden outputs and the original prototxts live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The project's shared facts folder: $TSN_SHARED, else ../shared beside the clone."""
    path = Path(os.environ.get("TSN_SHARED", REPO_ROOT.parent / "shared"))
    if not (path / "caffe_golden").is_dir() or not (path / "tsn_caffe").is_dir():
        raise FileNotFoundError(
            f"shared facts folder not found at {path} (needs caffe_golden/ and tsn_caffe/): "
            "set TSN_SHARED to the folder that holds them"
        )
    return path


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """Outputs of the real Caffe fork (the definition of 'faithful')."""
    return shared_dir() / "caffe_golden"


@pytest.fixture(scope="session")
def tsn_caffe_dir() -> Path:
    """The original TSN UCF101 prototxts and solvers, byte-exact."""
    return shared_dir() / "tsn_caffe"
