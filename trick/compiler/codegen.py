"""IR -> standalone PyTorch source: one nn.Module class, constructed without arguments.

The constructor calls are the same `Ctor`s (from each layer's registry entry) that `build` instantiates, written out in the same
order. The layers torch lacks are copied into the file from trick/layers.py (each definition
the model uses and the definitions those use), so the file needs torch alone, not `trick`.
A run's source also embeds what training fitted (`Fitted`): the input normalization and the
regression targets' standardization, so that its forward takes raw inputs.

Nothing from the spec reaches the source except through `repr()` (literals) or as
numbers and validated identifiers, so no spec text can break out of a string or a comment.
"""

from __future__ import annotations

import ast
import functools
import keyword
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import ir
from .clauses import constructor
from .ctor import Ctor
from .lower import RESERVED_NAMES

INDENT = "    "
LAYERS_FILE = Path(__file__).resolve().parents[1] / "layers.py"  # read as text: the compiler does not import it


def _shape(shape: tuple[int, ...]) -> str:
    return "(B, " + ", ".join(map(str, shape)) + ")"


def _literal(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, Ctor):
        return _call(value, 0)
    return repr(value)


def _path(path: str) -> str:
    """`nn.Linear` as it is; `layers.Last` -> `Last` (its definition is copied into the file)."""
    return path.removeprefix("layers.")


def _call(ctor: Ctor, depth: int) -> str:
    if ctor.path == "nn.Sequential" and ctor.args and isinstance(ctor.args[0], tuple):
        pad = INDENT * (depth + 1)
        children = "".join(f"{pad}({name!r}, {_call(child, depth + 1)}),\n" for name, child in ctor.args)
        return f"nn.Sequential(OrderedDict([\n{children}{INDENT * depth}]))"
    args = [_literal(a) for a in ctor.args] + [f"{k}={_literal(v)}" for k, v in ctor.kwargs.items()]
    return f"{_path(ctor.path)}({', '.join(args)})"


# ---- the layers torch lacks, copied from trick/layers.py ----------------------------------------------


@dataclass(frozen=True)
class _Definition:
    name: str
    text: str  # its source, as written in trick/layers.py
    uses: frozenset[str]  # the top-level names of layers.py it refers to


@functools.cache
def _layers_module() -> tuple[dict[str, _Definition], dict[str, str]]:
    """The top-level definitions of trick/layers.py by name, in file order, and its import
    statements by the name each binds (`F` -> `import torch.nn.functional as F`)."""
    text = LAYERS_FILE.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text)
    imports: dict[str, str] = {}
    found: dict[str, tuple[str, ast.AST, str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
                for alias in node.names:
                    imports[(alias.asname or alias.name).split(".")[0]] = ast.get_source_segment(text, node)
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            found[node.name] = (node.name, node, "\n".join(lines[first - 1 : node.end_lineno]))
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            for target in node.targets:
                found[target.id] = (target.id, node, ast.get_source_segment(text, node))
    known = set(found) | set(imports)
    definitions = {}
    for name, node, source in found.values():
        used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & known
        definitions[name] = _Definition(name, source, frozenset(used - {name}))
    return definitions, imports


def project_layers(graph: ir.ModelGraph) -> list[str]:
    """The names of trick.layers that the model's constructors call, in build order."""
    names = (p[len("layers.") :] for layer in graph.all_layers() for p in constructor(layer).paths() if p.startswith("layers."))
    return list(dict.fromkeys(names))


def uses_project_layers(graph: ir.ModelGraph) -> bool:
    """Whether the model needs a layer of trick.layers (its source then carries a copy)."""
    return bool(project_layers(graph))


def layer_sources(names: list[str]) -> tuple[list[str], list[str]]:
    """(import lines, definitions): the source of the named trick.layers definitions and of
    everything they use, in the order of trick/layers.py, and the imports they need."""
    definitions, imports = _layers_module()
    needed: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        if name in definitions:
            todo += definitions[name].uses
    lines = list(dict.fromkeys(imports[n] for n in sorted(needed) if n in imports))
    return lines, [d.text for name, d in definitions.items() if name in needed]


# ---- names ----------------------------------------------------------------------------------------------


# Names the generated module uses itself, which its class must not shadow (`spec ordered_dict`).
_MODULE_NAMES = frozenset({"OrderedDict", "torch", "nn", "layers", "annotations", "CLASSES"})

# The keys of the heads' nn.ModuleDict must not be attributes of it (nn.Module's own and the
# dict's methods): `head half`, `head type`, `head to` would clash.
_MODULE_DICT_NAMES = RESERVED_NAMES | {"clear", "items", "keys", "pop", "update", "values"}


def class_name(spec: str) -> str:
    """`mnist1d_cnn` -> `Mnist1dCnn` (never a keyword, nor a name the module uses itself,
    the layers copied from trick/layers.py included)."""
    name = "".join(part[:1].upper() + part[1:] for part in spec.split("_") if part)
    if not name.isidentifier() or name[0].isdigit():
        return "Model"
    definitions, imports = _layers_module()
    taken = _MODULE_NAMES | set(definitions) | set(imports)
    return name + "Model" if keyword.iskeyword(name) or name in taken else name


def head_key(target: str) -> str:
    """The key of a head in the model's `heads` ModuleDict (its state_dict prefix `heads.KEY.`):
    the target's name, with a '_' after a name that is an attribute of the ModuleDict or that
    starts or ends with '_' (so that no two targets get the same key). The model's output
    dict is keyed by the target's name, whatever the key."""
    if target in _MODULE_DICT_NAMES or target.startswith("_") or target.endswith("_"):
        return target + "_"
    return target


def _needs_ordered_dict(graph: ir.ModelGraph) -> bool:
    return bool(graph.heads) or any(layer.op == "residual" for layer in graph.all_layers())


# ---- what a run fitted ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fitted:
    """What training fitted, for the source of a run: the input normalization
    x' = (x - shift) / scale (flat float lists of `shape`, which broadcasts over (B, *input);
    None: no normalization), each regression target's standardization (the output in real
    units is output · std + mean), the class names by target, and the weights' file, run
    folder and epoch (for the header)."""

    shift: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    shape: tuple[int, ...] = ()
    normalization: str = ""  # e.g. "zscore per feature"
    targets: dict[str, tuple[float, float]] = field(default_factory=dict)  # target -> (mean, std)
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    weights: str = ""  # best.pt or last.pt
    run: str = ""  # the run folder's name
    epoch: int = 0


def _floats(name: str, values: tuple[float, ...], shape: tuple[int, ...]) -> list[str]:
    """`NAME = torch.tensor([...], dtype=torch.float64).reshape(shape)`, the numbers exact
    (repr of a float round-trips) and wrapped at about 100 characters."""
    numbers = [repr(float(v)) for v in values]
    if not all(math.isfinite(float(v)) for v in values):
        raise ValueError(f"{name} holds a value that is not finite")
    lines, line = [], ""
    for number in numbers:
        if line and len(line) + len(number) > 96:
            lines.append(line.rstrip())
            line = ""
        line += number + ", "
    lines.append(line.rstrip().rstrip(","))
    body = "".join(f"{INDENT}{chunk}\n" for chunk in lines)
    return [f"{name} = torch.tensor([\n{body}], dtype=torch.float64).reshape({tuple(shape)!r})"]


def _destandardize(x: str, mean: float, std: float) -> str:
    return f"{x} * {float(std)!r} + {float(mean)!r}"


# ---- the source -----------------------------------------------------------------------------------------


def generate(graph: ir.ModelGraph, source_path: str | None = None, fitted: Fitted | None = None) -> str:
    """The Python source of the model, readable as if a person wrote it; it needs torch only.

    The header names the spec by its file name (`source_path`'s last part). With `fitted`
    (a run), forward takes raw inputs: it normalizes them as training did (in float64, as
    the trainer does) and gives regression outputs in the target's own units."""
    name = class_name(graph.name)
    uses = project_layers(graph)
    lines: list[str] = []
    lines.append(f'"""The {graph.name} network, generated by trickc."""')  # the name is an identifier
    if source_path:
        lines.append(f"# from {os.path.basename(source_path)!r}")
    if fitted is not None and fitted.weights:
        lines.append(f"# trained weights: {fitted.weights!r} of the run folder {fitted.run!r} (epoch {int(fitted.epoch)}), for")
        lines.append(f"# model.load_state_dict(torch.load({fitted.weights!r})['model']); forward takes raw inputs")
    lines.append("")
    extra_imports, definitions = layer_sources(uses) if uses else ([], [])
    if uses:
        lines += ["from __future__ import annotations", ""]
    standard = [line for line in extra_imports if line == "import math"]
    if _needs_ordered_dict(graph):
        standard.append("from collections import OrderedDict")
    if standard:
        lines += standard + [""]
    lines.append("import torch")
    lines += [line for line in extra_imports if line not in ("import math", "import torch", "from torch import nn")]
    lines.append("from torch import nn")
    if fitted is not None:
        lines += ["", ""]
        if fitted.classes:
            lines.append("# The class names of each classifier output, by target (output i is the logit of class i).")
            lines.append(f"CLASSES = {({t: list(c) for t, c in fitted.classes.items()})!r}")
        if fitted.shift is not None and fitted.scale is not None:
            lines.append(f"# The input normalization fitted on the training split ({fitted.normalization}): x' = (x - INPUT_SHIFT) / INPUT_SCALE.")
            lines += _floats("INPUT_SHIFT", fitted.shift, fitted.shape)
            lines += _floats("INPUT_SCALE", fitted.scale, fitted.shape)
    if definitions:
        lines += ["", "", "# ---- the layers torch lacks (from trick/layers.py) " + "-" * 48]
        for text in definitions:
            lines += ["", "", text]
        lines += ["", "", "# ---- the network " + "-" * 82]
    lines += ["", "", f"class {name}(nn.Module):"]
    lines.append(f"{INDENT}def __init__(self):")
    lines.append(f"{INDENT * 2}super().__init__()")
    normalizes = fitted is not None and fitted.shift is not None and fitted.scale is not None
    if normalizes:  # not in the state_dict: the weights of best.pt load as they are
        lines.append(f'{INDENT * 2}self.register_buffer("_input_shift", INPUT_SHIFT.clone(), persistent=False)')
        lines.append(f'{INDENT * 2}self.register_buffer("_input_scale", INPUT_SCALE.clone(), persistent=False)')
    for layer in graph.layers:
        comment = f"  # line {layer.span.line}" + (f", {layer.label}" if layer.label else "")
        lines.append(f"{INDENT * 2}self.{layer.name} = {_call(constructor(layer), 2)}{comment}")
    if graph.heads:
        lines.append(f"{INDENT * 2}self.heads = nn.ModuleDict({{")
        for head in graph.heads:
            children = tuple((layer.name, constructor(layer)) for layer in head.layers)
            lines.append(f"{INDENT * 3}{head_key(head.target)!r}: {_call(Ctor('nn.Sequential', children), 3)},  # line {head.span.line}")
        lines.append(f"{INDENT * 2}}})")
    lines.append("")
    lines.append(f"{INDENT}def forward(self, x: torch.Tensor){' -> dict[str, torch.Tensor]' if graph.heads else ' -> torch.Tensor'}:")
    lines.append(f"{INDENT * 2}# x: {_shape(graph.input)}" + (", raw inputs" if normalizes else ""))
    if normalizes:
        lines.append(f"{INDENT * 2}x = ((x.double() - self._input_shift) / self._input_scale).to(x.dtype)  # as in training")
    for layer in graph.layers:
        step = f"x = x + self.{layer.name}(x)" if layer.op == "residual" else f"x = self.{layer.name}(x)"
        lines.append(f"{INDENT * 2}{step}  # {_shape(layer.output)}")
    targets = fitted.targets if fitted is not None else {}
    if graph.heads:
        plain = all(head_key(head.target) == head.target for head in graph.heads) and not targets
        if plain:
            lines.append(f"{INDENT * 2}return {{target: head(x) for target, head in self.heads.items()}}")
        else:  # keys that differ from their targets (head_key), or outputs in real units
            outputs = []
            for head in graph.heads:
                out = f"self.heads[{head_key(head.target)!r}](x)"
                if head.target in targets:
                    out = _destandardize(out, *targets[head.target])
                outputs.append(f"{INDENT * 3}{head.target!r}: {out},")
            if any(head.target in targets for head in graph.heads):
                lines.append(f"{INDENT * 2}# regression outputs in their own units: output * std + mean")
            lines.append(f"{INDENT * 2}return {{")
            lines += outputs
            lines.append(f"{INDENT * 2}}}")
    elif "label" in targets:
        lines.append(f"{INDENT * 2}return {_destandardize('x', *targets['label'])}  # in the target's own units: output * std + mean")
    else:
        lines.append(f"{INDENT * 2}return x")
    return "\n".join(lines) + "\n"
