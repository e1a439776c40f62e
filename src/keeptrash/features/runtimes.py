"""features.runtime: the library that runs the backbone on a CPU.

torch runs the PyTorch model as it is (eager). onnxruntime and openvino run the same weights exported
once to ONNX: the export is cached beside the feature store under the digest of the weights, so it
is redone only when the weights, the pooling or the exporter change, and it never downloads
anything. The exported graph takes the uint8 photos of any height and width and normalises them
itself. Its features agree with torch eager to within one float16 step (the feature store's
precision; measured in benchmarks/runtime.py, checked by tests), so every runtime shares one cache
namespace. On a GPU torch runs the model whatever this says.
"""

import hashlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from keeptrash.features.backbones import Backbone
from keeptrash.io import atomic_write
from keeptrash.params import RUNTIME_NAMES

RUNTIMES = RUNTIME_NAMES  # named in keeptrash.params, where features.runtime is validated
# Bump when the exported graph changes in a way the weights' digest does not show (inputs, opset, normalisation).
EXPORT_VERSION = 1
ONNX_OPSET = 17
EXPORTS_FOLDER = "exported"
# Agreement is judged in float16 steps at a value's magnitude, but at least at this one's: near zero a float16
# step is far finer than the rounding of any two float32 implementations of the same network.
AGREEMENT_FLOOR = 2.0**-4


class NormalisedInput(nn.Module):
    """uint8 (N, 3, H, W) -> the backbone's features: the normalisation torch's Embedder does, inside the exported graph."""

    def __init__(self, features: nn.Module, backbone: Backbone):
        super().__init__()
        self.features = features
        self.register_buffer("mean", torch.tensor(backbone.mean).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(backbone.std).view(1, 3, 1, 1) * 255)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.features((pixels.float() - self.mean) / self.std)


def weights_digest(model: nn.Module) -> str:
    digest = hashlib.sha256(f"export v{EXPORT_VERSION} opset {ONNX_OPSET} torch {torch.__version__}".encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def exported_model(backbone: Backbone, pooling: str, folder: Path) -> Path:
    """The backbone with this pooling as ONNX in `folder`, exported from its installed weights unless already there."""
    model = NormalisedInput(backbone.build(pooling), backbone).eval()
    path = folder / f"{backbone.name}-{pooling}-{weights_digest(model)}.onnx"
    if path.exists():
        return path
    example = torch.zeros(1, 3, 64, 96, dtype=torch.uint8)

    def export(temp: Path) -> None:
        # The TorchScript exporter: it traces the pooling hooks and takes height and width as dynamic axes,
        # which the whole-photo inputs need (every aspect ratio is its own shape).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(temp),
                dynamo=False,
                input_names=["pixels"],
                output_names=["features"],
                dynamic_axes={"pixels": {0: "batch", 2: "height", 3: "width"}, "features": {0: "batch"}},
                opset_version=ONNX_OPSET,
            )

    atomic_write(path, export)
    return path


def onnxruntime_session(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda pixels: session.run(None, {"pixels": pixels})[0]


def openvino_session(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import openvino

    config = {
        "INFERENCE_NUM_THREADS": threads,
        # CPUs with AMX or AVX512-BF16 would otherwise compute in bfloat16, about 3 significant digits.
        "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY",
        # Pinned, the one-thread sessions of two worker processes may be pinned to the same core.
        "ENABLE_CPU_PINNING": False,
    }
    request = openvino.Core().compile_model(str(path), "CPU", config).create_infer_request()
    # The request reuses its output buffer on the next call.
    return lambda pixels: request.infer({0: pixels})[0].copy()


SESSIONS = {"onnxruntime": onnxruntime_session, "openvino": openvino_session}


def float16_steps(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """|other - reference| per value in float16 steps at the larger magnitude (AGREEMENT_FLOOR at least)."""
    magnitude = np.maximum(np.maximum(np.abs(reference), np.abs(other)), AGREEMENT_FLOOR).astype(np.float16)
    return np.abs(other.astype(np.float32) - reference.astype(np.float32)) / np.spacing(magnitude).astype(np.float32)


def embedded_by_shape(pixels: list[torch.Tensor], forward: Callable[[torch.Tensor], np.ndarray]) -> np.ndarray:
    """forward on the photos of each shape stacked into one batch (bucketing); the rows come back in the order given."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for position, image in enumerate(pixels):
        by_shape.setdefault(tuple(image.shape), []).append(position)
    rows: list[np.ndarray | None] = [None] * len(pixels)
    for positions in by_shape.values():
        for position, row in zip(positions, forward(torch.stack([pixels[position] for position in positions]))):
            rows[position] = row
    return np.stack(rows)


class ExportedEmbedder:
    """The exported backbone on a CPU, with the torch Embedder's interface: uint8 inputs of any sizes in, float32 rows out.

    Each process opens its own session on first use, with as many threads as torch was given there:
    one in a feature worker, all cores when the model runs in the main process (features.workers 0).
    """

    device = torch.device("cpu")

    def __init__(self, runtime: str, path: Path):
        self.runtime, self.path = runtime, path
        self._session: Callable[[np.ndarray], np.ndarray] | None = None
        self._pid = -1

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_session": None, "_pid": -1}

    def __call__(self, pixels: list[torch.Tensor]) -> np.ndarray:
        if self._pid != os.getpid():
            self._session, self._pid = SESSIONS[self.runtime](self.path, torch.get_num_threads()), os.getpid()
        return embedded_by_shape(pixels, lambda batch: self._session(batch.numpy()))
