#!/usr/bin/env python
"""Choose the reader's abstention threshold on the validation sets, through the real pipeline.

    .venv/bin/python scripts/tune_abstention.py [--write]

Answerable questions: the CMRC 2018 trial set over its paragraphs as posts, and the finews
dev set over ../shared/corpus-sample/finews. Unanswerable ones: finews dev's null
questions, plus each set's questions asked of the *other* corpus (a CMRC question has no
answer in finance news, and the other way round). For every threshold on the reader's
margin (best span − null score; off-topic questions need ``--off-topic`` more) it prints
answer_hit with abstentions counted as misses, and the share of unanswerable questions
abstained; the threshold maximising their mean is chosen (with --write, stored in
qa_bot/answer/data/reader.json). Both sets are validation data: nothing here is trained.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa_bot.answer.weights import MANIFEST, SHIPPED_DIR  # noqa: E402
from qa_bot.config import Settings  # noqa: E402
from qa_bot.evaluate import MAX_ANSWER_CHARS, eval_dirs, load_questions, write_posts_corpus  # noqa: E402
from qa_bot.service import QAService  # noqa: E402

SHARED = ROOT.parent / "shared"


@dataclass(frozen=True)
class Probe:
    margin: float
    off_topic: bool
    hit: bool  # the answer (if given) holds a gold answer


def service_for(questions: Path, corpus: Path | None) -> tuple[QAService, list]:
    s = Settings()
    if s.reader == "off":  # the default answerer is the extractor; this tunes the reader
        s = s.model_copy(update={"reader": "onnx-int8"})
    qs, posts = load_questions(questions)
    gen_corpus, gen_index = eval_dirs(s.cache_dir, questions, corpus)
    if posts is not None:
        write_posts_corpus(posts, gen_corpus)
    svc = QAService(s.model_copy(update={"corpus_dir": corpus or gen_corpus, "index_dir": gen_index}))
    svc.update()
    if svc.reader is None:
        raise SystemExit("the reader did not load: nothing to tune")
    return svc, qs


def probe(svc: QAService, q: str, golds: tuple[str, ...]) -> Probe:
    ex = svc.examine(q)
    e = ex.extraction
    if e is None:
        return Probe(float("-inf"), ex.off_topic, False)
    hit = len(e.text) <= MAX_ANSWER_CHARS and any(g in e.text for g in golds)
    return Probe(e.confidence, ex.off_topic, hit)


def abstains(p: Probe, t: float, off: float) -> bool:
    return p.margin < t or (p.off_topic and p.margin < t + off)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trial", type=Path, default=SHARED / "eval" / "cmrc2018_trial.json")
    ap.add_argument("--finews", type=Path, default=SHARED / "eval" / "finews_qa_dev.jsonl")
    ap.add_argument("--finews-corpus", type=Path, default=SHARED / "corpus-sample" / "finews")
    ap.add_argument("--cross", type=int, default=200, help="trial questions asked of finews")
    ap.add_argument("--off-topic", type=float, default=2.0)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args(argv)

    trial_svc, trial_qs = service_for(args.trial, None)
    fin_svc, fin_qs = service_for(args.finews, args.finews_corpus)
    rng = random.Random(7)
    sets = {
        "trial": [probe(trial_svc, q.q, q.answers) for q in trial_qs],
        "finews": [probe(fin_svc, q.q, q.answers) for q in fin_qs if q.answers],
    }
    unanswerable = {
        "finews null": [probe(fin_svc, q.q, ()) for q in fin_qs if not q.answers],
        "trial→finews": [probe(fin_svc, q.q, ()) for q in rng.sample(trial_qs, args.cross)],
        "finews→trial": [probe(trial_svc, q.q, ()) for q in fin_qs],
    }
    margins = sorted({round(p.margin, 2) for ps in sets.values() for p in ps if p.margin > -1e9})
    grid = sorted({margins[int(i * (len(margins) - 1) / 60)] for i in range(61)} | {0.0})
    rows = []
    for t in grid:
        hit = {k: sum(p.hit and not abstains(p, t, args.off_topic) for p in ps) / len(ps) for k, ps in sets.items()}
        ab = {k: sum(abstains(p, t, args.off_topic) for p in ps) / len(ps) for k, ps in unanswerable.items()}
        score = (sum(hit.values()) / len(hit) + sum(ab.values()) / len(ab)) / 2
        rows.append((score, t, hit, ab))
    print("| threshold | " + " | ".join(f"hit {k}" for k in sets) + " | "
          + " | ".join(f"abstained {k}" for k in unanswerable) + " | mean |")
    print("|---" * (2 + len(sets) + len(unanswerable)) + "|")
    for score, t, hit, ab in rows:
        print(f"| {t:.2f} | " + " | ".join(f"{v:.3f}" for v in hit.values()) + " | "
              + " | ".join(f"{v:.3f}" for v in ab.values()) + f" | {score:.3f} |")
    best = max(rows, key=lambda r: r[0])
    print(f"\nchosen threshold {best[1]:.2f} (mean {best[0]:.3f}), off-topic +{args.off_topic}")
    if args.write:
        path = SHIPPED_DIR / MANIFEST
        m = json.loads(path.read_text(encoding="utf-8"))
        m["null_threshold"] = best[1]
        m["trained"]["null_threshold_tuned"] = {
            "by": "scripts/tune_abstention.py", "on": ["cmrc2018_trial", "finews_qa_dev"],
            "score": round(best[0], 4), "hit": best[2], "abstained": best[3],
        }
        path.write_text(json.dumps(m, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
