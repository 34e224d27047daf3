"""Child process of bench/run.py: load QAService on an index, answer questions, report.

Reads QA_BOT_* settings from the environment and a JSON list of questions from
argv[1]; prints one JSON object: load time, per-question latencies (warm) and the
process's peak RSS (VmHWM), i.e. what a bot serving this index would hold.

With ``--during READY STOP`` it then creates READY and keeps asking the questions
round after round until STOP exists, reporting each answer's (end time, latency):
the parent publishes an update meanwhile, to see what a serving bot pays for it.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def peak_rss_kb() -> int:
    """This process's peak RSS. VmHWM belongs to the process image, whereas Linux carries
    ``ru_maxrss`` over from the parent across fork + exec (the bench parent is large)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    t0 = time.perf_counter()
    from qa_bot.config import Settings
    from qa_bot.service import QAService

    qs: list[list[object]] = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    service = QAService(Settings())
    first = service.ask(str(qs[0][0]))  # loads the index, the query encoder, jieba
    load_s = time.perf_counter() - t0
    lat: list[float] = []
    hits = answered = 0
    for q, golds in qs:
        t = time.perf_counter()
        a = service.ask(str(q))
        lat.append((time.perf_counter() - t) * 1000)
        if a.answer is not None:
            answered += 1
            hits += any(str(g) in a.answer or a.answer in str(g) for g in golds)  # type: ignore[union-attr]
    timeline: list[tuple[float, float]] = []
    if len(sys.argv) == 5 and sys.argv[2] == "--during":
        ready, stop = Path(sys.argv[3]), Path(sys.argv[4])
        ready.touch()
        while not stop.exists():
            for q, _ in qs:
                t = time.perf_counter()
                service.ask(str(q))
                timeline.append((time.time(), (time.perf_counter() - t) * 1000))
                if stop.exists():
                    break
    peak_kb = peak_rss_kb()
    print(
        json.dumps(
            {
                "load_and_first_answer_s": load_s,
                "first_answer": first.answer,
                "latencies_ms": lat,
                "answered": answered,
                "answer_hits": hits,
                "peak_rss_mb": peak_kb / 1024,
                "timeline": timeline,
            }
        )
    )


if __name__ == "__main__":
    main()
