"""The reader's model card across runs: a continued training run keeps the history of the
weights it grew from, and tuning removes the card's "tune me next" note."""

from __future__ import annotations

import argparse
from pathlib import Path

from script_helpers import load_script

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CARD = REPO / "qa_bot" / "answer" / "data" / "MODEL_CARD.md"


def _card_of_a_continued_run(tmp_path: Path) -> Path:
    train = load_script("train_reader")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "MODEL_CARD.md").write_text(
        "# Reader model card\n\nintro\n\n"
        f"{train.HISTORY_HEADING} (2026-12-02)\n\n1. first run: F1 55.\n2. second run: F1 62.\n\n"
        "## Facts\n```json\n{}\n```\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    out.mkdir()
    manifest = {"trained": {"trial_gold_paragraph": {}}, "weights_dtype": "int8 rows"}
    args = argparse.Namespace(freeze_layers=0, init_from=earlier)
    train.write_card(out, manifest, {}, args)
    return out / "MODEL_CARD.md"


def test_a_continued_run_keeps_the_history_before_its_facts(tmp_path: Path) -> None:
    text = _card_of_a_continued_run(tmp_path).read_text(encoding="utf-8")
    assert "2. second run: F1 62." in text
    assert text.index("How these weights grew") < text.index("## Facts")
    assert text.count("How these weights grew") == 1


def test_a_fresh_run_has_no_history(tmp_path: Path) -> None:
    train = load_script("train_reader")
    assert train.carried_history(None) == []
    assert train.carried_history(tmp_path) == []  # no card there


def test_tuning_replaces_the_pending_note_and_keeps_the_history(tmp_path: Path) -> None:
    card = _card_of_a_continued_run(tmp_path)
    tune = load_script("tune_reader")
    assert tune.TUNE_PENDING in card.read_text(encoding="utf-8")
    setting = tune.Setting(3, 1.0, "sentence", 0.0, False, 0.5)
    held = {"trial": {"answer_hit": 0.7, "span_f1": 60.0, "abstained_unanswerable": 0.9}}
    tune.write_card_section(card, setting, {"folds": 4, "held_out_scores": held}, {})
    text = card.read_text(encoding="utf-8")
    assert tune.TUNE_PENDING not in text and "until then the defaults" not in text
    assert "2. second run: F1 62." in text and tune.CARD_HEADING in text
    assert text.index(tune.CARD_HEADING) < text.index("## Facts")


def test_the_shipped_card_is_tuned_and_tells_its_history() -> None:
    text = SHIPPED_CARD.read_text(encoding="utf-8")
    assert "Next: `scripts/tune_reader.py --write`" not in text
    assert "## How these weights grew" in text
    assert "## Answering in the pipeline" in text
