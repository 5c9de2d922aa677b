"""`trickc export`: a trained run as ONNX, a torch.export program (.pt2) or TorchScript (.ts).

The exported graph takes raw inputs, as the data gives them: the input normalization fitted
on the training split is inside it, x' = (x - shift) / scale (shift and scale are buffers), and
so is the de-standardization of regression outputs (value = output · std + mean). Classifier
outputs are logits (softmax gives the probabilities). The batch axis is dynamic. The class
names, the input shape and the spec hash go with the file: ONNX metadata_props, and the
extra file `trick.json` of a .pt2 or .ts archive. An ONNX file is checked with onnxruntime
against torch on a batch of another size than the one it was traced with.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..dsl.diagnostics import TrickUsageError
from .predict import Loaded

FORMATS = {".onnx": "ONNX", ".pt2": "torch.export", ".ts": "TorchScript"}
EXPORT_MISSING = "exporting to ONNX needs the packages onnx, onnxscript and onnxruntime ({missing} missing); install them with: pip install 'trick[export]'"
TOLERANCE = 1e-5  # the largest |onnxruntime - torch| accepted, relative to the largest |output| (at least 1)


class RawInputs(nn.Module):
    """A trained model that takes raw inputs: (x - shift) / scale, the network, and each
    regression output · std + mean. `regression` maps a target to its (mean, std)."""

    def __init__(self, model: nn.Module, shift: torch.Tensor | None, scale: torch.Tensor | None, regression: dict[str, tuple[float, float]], multi: bool):
        super().__init__()
        self.model = model
        self.normalizes = shift is not None
        if shift is not None:
            self.register_buffer("shift", shift.to(torch.float32))
            self.register_buffer("scale", scale.to(torch.float32))
        self.regression = dict(regression)
        self.multi = multi

    def forward(self, x: torch.Tensor):
        if self.normalizes:
            x = (x - self.shift) / self.scale
        out = self.model(x)
        if not self.multi:
            if "label" in self.regression:
                mean, std = self.regression["label"]
                out = out * std + mean
            return out
        return {t: (v * self.regression[t][1] + self.regression[t][0] if t in self.regression else v) for t, v in out.items()}


def raw_input_model(loaded: Loaded, weights: str | None = None) -> RawInputs:
    """The run's model (of `weights`) wrapped to take raw inputs, in eval mode on the CPU."""
    model, normalizer, _ = loaded.checkpoint(weights or loaded.weights)
    shift = normalizer.shift.cpu() if normalizer.kind is not None else None
    scale = normalizer.scale.cpu() if normalizer.kind is not None else None
    regression = {o.target: (o.mean, o.std) for o in loaded.outputs if o.regression}
    return RawInputs(model, shift, scale, regression, loaded.multi).eval()


def metadata(loaded: Loaded, weights: str) -> dict:
    """What goes with an exported model: the spec, its hash, the input and the outputs."""
    epoch = loaded.checkpoint(weights)[2]
    outputs = []
    for o in loaded.outputs:
        entry = {"name": o.target, "column": o.column, "task": "regression" if o.regression else "classification"}
        entry.update({"units": "the target's own (de-standardized inside)"} if o.regression else {"classes": list(o.classes), "values": "logits"})
        outputs.append(entry)
    return {
        "spec": loaded.graph.name,
        "spec_hash": loaded.spec_hash,
        "input_shape": list(loaded.inputs.shape),
        "input_names": list(loaded.inputs.names) if loaded.inputs.names else None,
        "inputs": "raw: the normalization fitted on the training split is inside the model",
        "outputs": outputs,
        "classes": {o.target: list(o.classes) for o in loaded.outputs if not o.regression},
        "weights": f"{weights}.pt",
        "epoch": epoch,
    }


@dataclass
class Exported:
    """What `export` wrote: the file, its format, and for ONNX the largest difference from
    torch that onnxruntime gave (relative to the largest output, at least 1)."""

    path: Path
    format: str
    difference: float | None = None


def example_inputs(loaded: Loaded, n: int, weights: str, seed: int = 0) -> torch.Tensor:
    """n raw inputs that normalize to N(0, 1) values: shift + scale · ε."""
    normalizer = loaded.checkpoint(weights)[1]
    noise = torch.randn((n, *loaded.inputs.shape), generator=torch.Generator().manual_seed(seed))
    if normalizer.kind is None:
        return noise
    return (normalizer.shift.cpu() + normalizer.scale.cpu() * noise.double()).to(torch.float32)


def output_names(loaded: Loaded) -> list[str]:
    return [o.target for o in loaded.outputs]


def export(loaded: Loaded, path: str | Path, weights: str | None = None) -> Exported:
    """Write the run's model, taking raw inputs, to `path` (.onnx, .pt2 or .ts)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise TrickUsageError(f"cannot export to '{path}': name a .onnx (ONNX), .pt2 (torch.export) or .ts (TorchScript) file")
    if suffix == ".onnx":
        missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
        if missing:
            raise TrickUsageError(EXPORT_MISSING.format(missing=", ".join(missing)))
    weights = weights or loaded.weights
    wrapper = raw_input_model(loaded, weights)
    info = json.dumps(metadata(loaded, weights), indent=2)
    x = example_inputs(loaded, 2, weights)
    if path.parent != Path("") and not path.parent.is_dir():
        raise TrickUsageError(f"cannot write {path}: the folder {path.parent} does not exist")
    try:
        if suffix == ".ts":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TorchScript's deprecation notice
                traced = torch.jit.trace(wrapper, (x,), strict=False, check_trace=False)
                torch.jit.save(traced, str(path), _extra_files={"trick.json": info})
            return Exported(path, FORMATS[suffix])
        program = _torch_export(wrapper, x)
        if suffix == ".pt2":
            torch.export.save(program, str(path), extra_files={"trick.json": info})
            return Exported(path, FORMATS[suffix])
        return Exported(path, FORMATS[suffix], _onnx(loaded, wrapper, program, path, info, weights))
    except OSError as err:
        raise TrickUsageError(f"cannot write {path}: {err.strerror or err}") from None


def _torch_export(wrapper: nn.Module, x: torch.Tensor):
    """torch.export's program of the wrapper, with a dynamic batch axis."""
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.export(wrapper, (x,), dynamic_shapes=({0: batch},))


def _onnx(loaded: Loaded, wrapper: nn.Module, program, path: Path, info: str, weights: str) -> float:
    """Write the ONNX file with its metadata; the largest relative difference onnxruntime
    gives from torch on 3 inputs (the file was traced with 2)."""
    import onnx

    quiet = logging.getLogger("torch.onnx")  # its notes (torchvision's ops are skipped) are not the user's concern
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_program = torch.onnx.export(program, (), dynamo=True, input_names=["x"], output_names=output_names(loaded), external_data=False, verbose=False)
    finally:
        quiet.setLevel(level)
    onnx_program.save(str(path), external_data=False)
    proto = onnx.load(str(path))
    meta = json.loads(info)
    for key, value in (("trick", info), ("classes", json.dumps(meta["classes"])), ("input_shape", json.dumps(meta["input_shape"])), ("spec_hash", meta["spec_hash"])):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return verify_onnx(path, wrapper, example_inputs(loaded, 3, weights, seed=1))


def verify_onnx(path: Path, wrapper: nn.Module, x: torch.Tensor) -> float:
    """max |onnxruntime - torch| / max(1, max |torch|) over every output, for inputs x."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = wrapper(x)
    want = list(want.values()) if isinstance(want, dict) else [want]
    worst = 0.0
    for a, b in zip(got, want):
        b = b.numpy()
        worst = max(worst, float(abs(a - b).max()) / max(1.0, float(abs(b).max())))
    return worst


def fitted(loaded: Loaded, weights: str | None = None) -> dict:
    """What training fitted, as plain data for the standalone source (codegen.Fitted): the
    input normalization (flat float64 lists and their shape), the regression targets' (mean,
    std), the class names, and the weights' file, run folder and epoch."""
    weights = weights or loaded.weights
    _, normalizer, epoch = loaded.checkpoint(weights)
    found: dict = {
        "targets": {o.target: (o.mean, o.std) for o in loaded.outputs if o.regression and (o.mean, o.std) != (0.0, 1.0)},
        "classes": {o.target: tuple(o.classes) for o in loaded.outputs if not o.regression},
        "weights": f"{weights}.pt",
        "run": loaded.run_dir.resolve().name,
        "epoch": epoch,
    }
    if normalizer.kind is not None:
        found.update(
            shift=tuple(normalizer.shift.cpu().reshape(-1).tolist()),
            scale=tuple(normalizer.scale.cpu().reshape(-1).tolist()),
            shape=tuple(normalizer.shift.shape),
            normalization=f"{normalizer.kind}, per {normalizer.per}",
        )
    return found
