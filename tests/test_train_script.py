"""scripts/train_reader.py's choices that need no model: which training sets to read."""

from __future__ import annotations

import pytest
from script_helpers import load_script


def test_sources_are_checked_and_deduplicated() -> None:
    train = load_script("train_reader")
    assert train.training_sources("cmrc") == ("cmrc",)
    assert train.training_sources(" drcd, cmrc ,drcd") == ("drcd", "cmrc")
    for bad in ("cmcr", "", "cmrc,squad"):
        with pytest.raises(SystemExit, match="choose from cmrc, drcd"):
            train.training_sources(bad)
