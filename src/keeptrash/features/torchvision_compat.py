"""Import torchvision on a CPU-only torch even when the installed wheel is a CUDA build.

PyPI's torchvision 0.28.0 wheel ships a compiled extension built against a CUDA torch. Beside the
CPU torch 2.13.0 build that extension cannot load, and ``import torchvision`` fails while
registering fake kernels for ``torchvision::nms`` because the operator schema was never defined.
Defining the two missing schemas lets the pure-Python parts (models, transforms) import and run.
The workaround engages only on exactly that failure; everywhere else torchvision imports as is.
"""

import importlib
import sys
from types import ModuleType

_MISSING_OPERATOR_MESSAGE = "operator torchvision::nms does not exist"
_MISSING_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
# Kept alive for the life of the process: dropping the Library object unregisters the schemas.
_schema_library = None


def import_torchvision() -> ModuleType:
    global _schema_library
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as error:
        if _MISSING_OPERATOR_MESSAGE not in str(error):
            raise
    import torch

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    _schema_library = torch.library.Library("torchvision", "DEF")
    for schema in _MISSING_SCHEMAS:
        _schema_library.define(schema)
    return importlib.import_module("torchvision")
