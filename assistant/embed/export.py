"""Exported copies of a sentence-transformers model, run by OpenVINO or ONNX Runtime.

A plain transformer + mean/CLS pooling (+ normalize) model is traced once from its local folder
and cached under the models folder: OpenVINO computes in bfloat16 on CPUs that have it
(AVX512-BF16, AMX) and float32 elsewhere; `onnx` is ONNX Runtime with int8 weights. Tokenizing
and pooling happen here, so the rows equal sentence-transformers' within rounding. Exports are
written into a temporary folder and renamed into place, so a crash never leaves a half-written
copy that looks complete. Anything unusual raises BackendUnavailable: the caller uses torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.devices import available_cores, cpu_identity
from assistant.embed.tokenizer import INPUT_NAMES, EmbeddingTokenizer

EXPORT_RECIPE = "1"  # part of the cache key: change it when the export steps change
_STALE_TEMP_SECONDS = 3600  # half-written exports older than this are from a dead process

logger = logging.getLogger(__name__)

# Pools one batch's last hidden states (the batch's number says which batch) into its rows.
Reducer = Callable[[np.ndarray, int], np.ndarray]
# Runs batches of token arrays (each in `input_names` order), reduces each batch's output as it
# comes, and returns the reduced batches in order.
BatchRunner = Callable[[list[list[np.ndarray]], Reducer], list[np.ndarray]]


@dataclass(frozen=True)
class _Runner:
    run: BatchRunner
    inputs: int  # how many inputs the exported model takes: a prefix of INPUT_NAMES


class BackendUnavailable(Exception):
    """The asked-for backend cannot run this model here; the embedder falls back to torch."""


def backend_installed(backend: str) -> bool:
    """Whether the runtime package of an exported backend can be imported (without importing)."""
    import importlib.util

    package = "openvino" if backend == "openvino" else "onnxruntime"
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class _Layout:
    pooling: str  # mean | cls
    max_seq_length: int
    do_lower_case: bool


class ExportedModel:
    """A sentence-transformers model (transformer, mean or CLS pooling, normalize) run by
    OpenVINO or ONNX Runtime from a cached export; tokenizing and pooling happen here."""

    def __init__(self, location: str, layout: _Layout, folder: Path, runner: _Runner) -> None:
        self.folder = folder
        self.tokenizer = EmbeddingTokenizer.from_folder(location, layout.max_seq_length)
        # The export traced the tokenizer's inputs in INPUT_NAMES order, without those it lacks;
        # the exported files do not keep the names, so their number says which they are.
        if runner.inputs not in (2, 3):
            raise BackendUnavailable(f"the exported model takes {runner.inputs} inputs")
        self.input_names = list(INPUT_NAMES[: runner.inputs])
        self.max_tokens = layout.max_seq_length
        self.layout = layout
        self._run = runner.run
        self.dimension = int(self.encode(["dimension"], 1).shape[1])

    @classmethod
    def load(cls, location: str, backend: str, cache_dir: Path | None) -> ExportedModel:
        """Load the cached export, building it first when it is missing or broken."""
        layout = _read_layout(location)  # refuse unsupported models before exporting anything
        folder = exported_model_dir(location, backend, cache_dir or _session_cache())
        if _is_complete(folder):
            try:
                return cls(location, layout, folder, _open_runner(folder, backend))
            except Exception:  # the runtimes raise their own types; any of them: rebuild
                shutil.rmtree(folder, ignore_errors=True)
        _build_atomically(location, backend, folder)
        return cls(location, layout, folder, _open_runner(folder, backend))

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Normalized float32 rows; batches hold texts of similar length, so little padding."""
        items = [text.lower() for text in texts] if self.layout.do_lower_case else list(texts)
        order = sorted(range(len(items)), key=lambda index: -len(items[index]))
        step = max(1, batch_size)
        batches = [
            self._tokenize([items[index] for index in order[start : start + step]])
            for start in range(0, len(order), step)
        ]
        vectors = np.concatenate(
            self._run(batches, lambda hidden, n: self._pool(hidden, batches[n]))
        )
        result = np.empty_like(vectors)
        result[order] = vectors
        return result

    def _tokenize(self, texts: list[str]) -> list[np.ndarray]:
        encoded = self.tokenizer.batch(texts)
        return [encoded[name] for name in self.input_names]

    def _pool(self, hidden: np.ndarray, arrays: list[np.ndarray]) -> np.ndarray:
        states = np.asarray(hidden, dtype=np.float32)
        if self.layout.pooling == "cls":
            pooled = states[:, 0]
        else:
            mask = arrays[self.input_names.index("attention_mask")][..., None].astype(np.float32)
            pooled = (states * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        normalized: np.ndarray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return normalized


def exported_model_dir(location: str, backend: str, cache_dir: Path) -> Path:
    """The cache folder of one export: a new model file, recipe or runtime gets a new one."""
    digest = hashlib.sha256(f"{EXPORT_RECIPE}\n{backend}\n{_runtime_version(backend)}".encode())
    root = Path(location)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    for path in files:
        status = path.stat()
        digest.update(f"\n{path.relative_to(root)}:{status.st_size}:{status.st_mtime_ns}".encode())
    if not files:
        digest.update(location.encode())
    suffix = "openvino" if backend == "openvino" else "onnx-int8"
    return cache_dir / f"embedder-{suffix}-{digest.hexdigest()[:16]}"


def _runtime_version(backend: str) -> str:
    try:
        if backend == "openvino":
            import openvino

            return str(openvino.__version__)
        import onnxruntime

        return str(onnxruntime.__version__)
    except ImportError as error:
        raise BackendUnavailable(f"{error.name or 'its package'} is not installed") from None


def _read_layout(location: str) -> _Layout:
    """The settings of a plain transformer + pooling (+ normalize) model; anything else (a
    Dense layer, a custom module) raises BackendUnavailable and is left to torch."""
    root = Path(location)
    if not (root / "modules.json").is_file():
        raise BackendUnavailable("needs a local sentence-transformers folder")
    modules = json.loads((root / "modules.json").read_text())
    kinds = [str(module["type"]).rsplit(".", 1)[-1] for module in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise BackendUnavailable(f"model modules {kinds} are not transformer + pooling")
    if modules[0].get("path", "") != "":
        raise BackendUnavailable("the transformer is not in the model folder itself")
    pooling = json.loads((root / modules[1]["path"] / "config.json").read_text())
    mode = pooling.get("pooling_mode")
    if mode is None:
        chosen = [
            key for key, value in pooling.items() if key.startswith("pooling_mode_") and value
        ]
        mode = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}.get(
            chosen[0] if len(chosen) == 1 else "", ""
        )
    if mode not in ("mean", "cls"):
        raise BackendUnavailable(f"pooling {mode or pooling} is not mean or CLS")
    settings_path = root / "sentence_bert_config.json"
    settings = json.loads(settings_path.read_text()) if settings_path.is_file() else {}
    return _Layout(
        mode, int(settings.get("max_seq_length") or 256), bool(settings.get("do_lower_case"))
    )


def _input_names(tokenizer: Any) -> list[str]:
    return [name for name in INPUT_NAMES if name in tokenizer.model_input_names]


def _open_runner(folder: Path, backend: str) -> _Runner:
    threads = available_cores()
    if backend == "openvino":
        return _openvino_runner(folder / "model.xml", threads, _compiled_cache(folder))
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )
    names = [item.name for item in session.get_inputs()]

    def run(batches: list[list[np.ndarray]], reduce: Reducer) -> list[np.ndarray]:
        return [
            reduce(np.asarray(session.run(None, dict(zip(names, arrays, strict=True)))[0]), n)
            for n, arrays in enumerate(batches)
        ]

    return _Runner(run, len(names))


def _compiled_cache(folder: Path) -> Path | None:
    """Where OpenVINO keeps the model it compiled for this CPU, so that a one-shot command
    (`search`, `ask`) loads it instead of compiling it again. OpenVINO keys its files on the
    model's path, its settings and its own version; the folder name adds the CPU, as the models
    folder may be shared by machines with other instruction sets. Rebuilding an export replaces
    the whole folder, this one included. None when it cannot be written."""
    cpu = hashlib.sha256(cpu_identity().encode()).hexdigest()[:12]
    cache = folder / "compiled" / cpu
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return cache if os.access(cache, os.W_OK) else None


def _openvino_runner(model_file: Path, threads: int, cache: Path | None = None) -> _Runner:
    """Batches run side by side on OpenVINO's throughput streams (each on a share of the
    cores), which beats one batch at a time on all cores by about a fifth on a busy machine.
    OpenVINO picks the precision: bfloat16 where the CPU has it, else float32."""
    import threading

    import openvino

    core = openvino.Core()
    settings: dict[str, Any] = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_NUM_THREADS": threads}
    try:
        cached = {**settings, "CACHE_DIR": str(cache)} if cache is not None else settings
        compiled = core.compile_model(str(model_file), "CPU", cached)
    except RuntimeError:  # a cache it cannot use: compile as without one
        if cache is None:
            raise
        compiled = core.compile_model(str(model_file), "CPU", settings)
    queue = openvino.AsyncInferQueue(compiled)
    lock = threading.Lock()  # one caller at a time owns the queue and its callback

    def run(batches: list[list[np.ndarray]], reduce: Reducer) -> list[np.ndarray]:
        reduced: dict[int, np.ndarray] = {}

        def finished(request: Any, number: int) -> None:
            # The output buffer is reused by the next batch: reduce it now.
            reduced[number] = reduce(request.get_output_tensor(0).data, number)

        with lock:
            queue.set_callback(finished)
            for number, arrays in enumerate(batches):
                queue.start_async(arrays, number)
            queue.wait_all()
        if len(reduced) != len(batches):
            raise RuntimeError("OpenVINO returned fewer batches than it was given")
        return [reduced[number] for number in range(len(batches))]

    return _Runner(run, len(compiled.inputs))


def _build_atomically(location: str, backend: str, final: Path) -> None:
    """Export into a temporary folder beside `final`, then rename it into place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - _STALE_TEMP_SECONDS
    for leftover in final.parent.glob(f".{final.name}.*"):
        with contextlib.suppress(OSError):  # another process may be removing it too
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    logger.info("exporting the embedding model for %s into %s (once)", backend, final)
    try:
        with _quiet_export():
            if backend == "openvino":
                _export_openvino(location, temporary)
            else:
                _export_onnx_int8(location, temporary)
        sizes = {path.name: path.stat().st_size for path in temporary.iterdir()}
        manifest = {"recipe": EXPORT_RECIPE, "backend": backend, "source": location, "files": sizes}
        (temporary / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if final.exists() and not _is_complete(final):
            shutil.rmtree(final, ignore_errors=True)  # a broken earlier export
        try:
            os.replace(temporary, final)
        except OSError:
            if not _is_complete(final):  # otherwise another process finished first: use theirs
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _is_complete(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        files: dict[str, int] = manifest["files"]
        return all((folder / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Tracing and quantizing print pages of warnings and progress bars that ask nothing of
    the user; keep them off the terminal while exporting."""
    from transformers.utils import logging as transformers_logging

    hub_logging: Any = transformers_logging  # its switches are untyped
    verbosity = hub_logging.get_verbosity()
    bars = hub_logging.is_progress_bar_enabled()
    root = logging.getLogger()
    root_level = root.level  # onnxruntime's quantizer warns on the root logger
    hub_logging.set_verbosity_error()
    hub_logging.disable_progress_bar()
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(root_level)
        hub_logging.set_verbosity(verbosity)
        if bars:
            hub_logging.enable_progress_bar()


def _session_cache() -> Path:
    """Where exports go when no cache folder was given: a folder that lives as long as we do."""
    import atexit

    folder = Path(tempfile.mkdtemp(prefix="assistant-embedder-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _traceable(location: str) -> tuple[Any, tuple[Any, ...], list[str]]:
    """The float32 transformer returning its last hidden states, and an example batch.

    Eager attention exports as plain MatMul/Softmax, which the runtimes fuse into their own
    attention kernels; the SDPA form does not fuse."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location)
    model = AutoModel.from_pretrained(location, attn_implementation="eager", dtype=torch.float32)
    names = _input_names(tokenizer)

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model.eval()

        def forward(self, *arrays: torch.Tensor) -> torch.Tensor:
            output = self.model(**dict(zip(names, arrays, strict=True)))
            hidden: torch.Tensor = output.last_hidden_state
            return hidden

    encoded = tokenizer(
        ["An example.", "A longer example sentence."], padding=True, return_tensors="pt"
    )
    return LastHiddenState().eval(), tuple(encoded[name] for name in names), names


def _export_openvino(location: str, folder: Path) -> None:
    import openvino
    import torch

    module, example, _ = _traceable(location)
    with torch.no_grad():
        converted = openvino.convert_model(module, example_input=example)
    openvino.save_model(converted, str(folder / "model.xml"), compress_to_fp16=False)


def _export_onnx_int8(location: str, folder: Path) -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    module, example, names = _traceable(location)
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    plain = folder / "plain.onnx"
    with torch.no_grad():
        torch.onnx.export(
            module,
            example,
            str(plain),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    # The avx512_vnni recipe of sentence-transformers: int8 weights per channel, uint8
    # activations quantized on the fly, the full 8-bit range.
    quantize_dynamic(
        plain,
        folder / "model.onnx",
        per_channel=True,
        reduce_range=False,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gather", "Transpose"],
    )
    plain.unlink()
