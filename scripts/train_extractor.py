"""Learn the answer extractor's window-scoring weights from question sets with gold answers.

    .venv/bin/python scripts/train_extractor.py \
        --set ../shared/eval/cmrc2018_trial.json \
        --set ../shared/eval/finews_qa_dev.jsonl=../shared/corpus-sample/finews \
        [--folds 2] [--l2 0.01]

For every answerable question, the extractor scores each candidate window of the top
passages with a feature vector (``qa_bot.answer.FEATURES``); a window is a positive when
the answer it would become holds a gold string within 120 characters. The weights
maximise the conditional likelihood of the positives among each question's windows
(a conditional logit, L2-regularised toward the hand-set weights, so features that the
data says nothing about keep their hand values).

It prints the extractor's answer_hit with hand weights, in-sample with learned weights,
and out-of-sample by k-fold cross-validation (contiguous blocks, so one article's
questions stay in one fold; each set counts equally in training): the cross-validated
figure is the honest estimate for questions it has not seen. The weights trained on
everything are printed in ``qa_bot.answer.WEIGHTS`` form, to adopt when they are better.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa_bot import answer as A  # noqa: E402
from qa_bot.evaluate import MAX_ANSWER_CHARS, Question  # noqa: E402
from qa_bot.types import ScoredChunk  # noqa: E402


@dataclass
class Example:
    """One question's candidate windows: features (n × d) and which of them hit."""

    feats: np.ndarray
    hits: np.ndarray  # bool (n,)
    lengths: np.ndarray  # answer length of each window


def collect(question: Question, passages: list[ScoredChunk]) -> Example | None:
    trace: list = []
    A.extract_answer(question.q, passages[:5], max_chars=MAX_ANSWER_CHARS, _trace=trace)
    if not trace:
        return None
    feats = [f for f, _ in trace]
    lens = [len(ans) for _, ans in trace]
    hits = [len(ans) <= MAX_ANSWER_CHARS and any(g in ans for g in question.answers) for _, ans in trace]
    return Example(np.asarray(feats, dtype=np.float64), np.asarray(hits), np.asarray(lens))


def _loss(
    w: np.ndarray, exs: list[Example], prior: np.ndarray, l2: float, weights: list[float]
) -> tuple[float, np.ndarray]:
    total, grad = 0.0, np.zeros_like(w)
    for ex, u in zip(exs, weights, strict=True):
        s = ex.feats @ w
        m = s.max()
        p_all = np.exp(s - m)
        z_all = p_all.sum()
        p_pos = p_all * ex.hits
        z_pos = p_pos.sum()
        total += u * (np.log(z_all) - np.log(z_pos))
        grad += u * ((p_all / z_all) @ ex.feats - (p_pos / z_pos) @ ex.feats)
    n = max(sum(weights), 1e-9)
    d = w - prior
    return total / n + l2 * float(d @ d), grad / n + 2 * l2 * d


def fit(groups: list[list[Example]], prior: np.ndarray, l2: float) -> np.ndarray:
    """Weights for the given question sets, each set counting equally however many
    questions it has (a small in-domain set is not drowned by a large general one)."""
    usable: list[Example] = []
    weights: list[float] = []
    for g in groups:
        us = [e for e in g if e is not None and e.hits.any() and not e.hits.all()]
        usable += us
        weights += [1.0 / len(us)] * len(us) if us else []
    res = minimize(
        _loss, prior.copy(), args=(usable, prior, l2, weights), jac=True, method="L-BFGS-B"
    )
    return res.x


def hit_rate(w: np.ndarray, exs: list[Example | None]) -> tuple[float, float]:
    """(answer_hit, median answer length) when each question takes its best window."""
    hits, lens = [], []
    for ex in exs:
        if ex is None:
            hits.append(False)
            continue
        i = int(np.argmax(ex.feats @ w))
        hits.append(bool(ex.hits[i]))
        lens.append(int(ex.lengths[i]))
    return float(np.mean(hits)) if hits else 0.0, float(np.median(lens)) if lens else 0.0


def load_set(spec: str) -> tuple[str, list[Example | None]]:
    """``questions[=corpus]`` → the set's examples, retrieving with the eval index."""
    from qa_bot.config import Settings
    from qa_bot.evaluate import eval_dirs, load_questions, write_posts_corpus
    from qa_bot.service import QAService

    qfile, _, corpus = spec.partition("=")
    qpath = Path(qfile)
    s = Settings()
    qs, posts = load_questions(qpath)
    corpus_path = Path(corpus) if corpus else None
    gen_corpus, gen_index = eval_dirs(s.cache_dir, qpath, corpus_path if posts is None else None)
    if posts is not None:
        write_posts_corpus(posts, gen_corpus)
        corpus_path = gen_corpus
    if corpus_path is None:
        raise SystemExit(f"{qfile}: a JSONL set needs =CORPUS_DIR")
    service = QAService(s.model_copy(update={"corpus_dir": corpus_path, "index_dir": gen_index}))
    service.update()
    retriever = service._current().retriever
    exs = [collect(q, retriever.search(q.q, 5)) for q in qs if q.answers]
    return qpath.name, exs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", action="append", required=True, help="QUESTIONS[=CORPUS_DIR]")
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--l2", type=float, default=0.01)
    args = ap.parse_args()

    sets = [load_set(spec) for spec in args.set]
    prior = np.asarray(A.WEIGHTS, dtype=np.float64)
    report: dict[str, dict[str, float]] = {}
    # cross-validation within each set, trained on the other folds of it plus all other sets
    for name, exs in sets:
        others = [ex2 for n2, ex2 in sets if n2 != name]
        n = len(exs)
        cv_hits = []
        for k in range(args.folds):
            lo, hi = k * n // args.folds, (k + 1) * n // args.folds
            w = fit([exs[:lo] + exs[hi:], *others], prior, args.l2)
            h, _ = hit_rate(w, exs[lo:hi])
            cv_hits.append((h, hi - lo))
        cv = sum(h * m for h, m in cv_hits) / max(n, 1)
        report[name] = {"questions": n, "hand": hit_rate(prior, exs)[0], "cross_validated": cv}
    w = fit([ex for _, ex in sets], prior, args.l2)
    for name, exs in sets:
        h, med = hit_rate(w, exs)
        report[name]["in_sample"] = h
        report[name]["median_answer_chars"] = med
    print(f"{'set':28} {'n':>5} {'hand':>7} {'learned':>8} {'cross-val':>9} {'median len':>10}")
    for name, r in report.items():
        print(
            f"{name:28} {r['questions']:>5} {r['hand']:>7.3f} {r['in_sample']:>8.3f} "
            f"{r['cross_validated']:>9.3f} {r['median_answer_chars']:>10.0f}"
        )
    print("WEIGHTS = (" + ", ".join(f"{x:.3f}" for x in w) + ")")
    print("  # " + ", ".join(A.FEATURES))


if __name__ == "__main__":
    main()
