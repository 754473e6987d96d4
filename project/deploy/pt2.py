"""torch.export programs (``.pt2``) and AOTInductor packages, with the checkpoint's inference
settings (class names, image size, mean, std) stored inside each file.

    python -m project export --ckpt_path CKPT --format pt2 --output model.pt2
        -> model.pt2       torch.export program: torch.export.load(path).module()(images)
        -> model.aoti.pt2  AOTInductor package (compiled C++/kernels, needs a C++ compiler):
                           torch._inductor.aoti_load_package(path)(images)

In a ``.pt2`` program the settings are the extra file ``inference.json``
(``torch.export.load(path, extra_files={"inference.json": ""})`` fills it in); in an AOTInductor
package they are its metadata (``aoti_load_package(path).get_metadata()``, lists as JSON, as in the
ONNX file). The batch dimension stays symbolic in both.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from torch import nn

from project.deploy.files import atomic_path

SETTINGS_FILE = "inference.json"


def export_program(
    network: nn.Module, image_size: int, strict: bool = False
) -> torch.export.ExportedProgram:
    """``network`` (eval mode) traced by torch.export for N x 3 x S x S images, any N >= 1
    (``strict``: traced by TorchDynamo, as PT2E quantization needs: project/deploy/pt2e_int8.py)."""
    example = torch.zeros(2, 3, image_size, image_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    return torch.export.export(network, (example,), dynamic_shapes=({0: batch},), strict=strict)


def save_program(program: torch.export.ExportedProgram, settings: dict, output: Path) -> Path:
    with atomic_path(output) as temporary:
        torch.export.save(program, temporary, extra_files={SETTINGS_FILE: json.dumps(settings)})
    return output


def load_program(path: str | Path) -> tuple[nn.Module, dict]:
    """The program as a callable module, and its settings. torch.export.load reads the graph
    from its own serialized form and the weights as tensors; no pickled code is run."""
    extra = {SETTINGS_FILE: ""}
    program = torch.export.load(str(path), extra_files=extra)
    return program.module(), json.loads(extra[SETTINGS_FILE])


def compiler_missing() -> str | None:
    """Why an AOTInductor package cannot be built here (None: it can)."""
    for name in ("g++", "c++", "clang++"):
        if shutil.which(name):
            return None
    return "no C++ compiler (g++, c++ or clang++) on PATH"


def aoti_path(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(".pt2") + ".aoti.pt2")


def save_aoti(program: torch.export.ExportedProgram, settings: dict, output: Path) -> Path:
    """Compile ``program`` ahead of time into a package (slow: minutes on 2 cores)."""
    from torch._inductor import aoti_compile_and_package

    metadata = {k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in settings.items()}
    with atomic_path(output) as temporary:
        aoti_compile_and_package(
            program,
            package_path=str(temporary),
            inductor_configs={"aot_inductor.metadata": metadata},
        )
    return output


def load_aoti(path: str | Path):
    from torch._inductor import aoti_load_package

    return aoti_load_package(str(path))
