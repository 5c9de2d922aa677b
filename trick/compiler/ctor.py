"""Constructor descriptions: a torch module's constructor call as plain data (no torch).

Each layer's registry entry turns its IR layer into a `Ctor`; `build` instantiates it and
`codegen` writes it out, so that the in-memory model and the generated source are the same
modules built in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Ctor:
    """A constructor call: `nn.Conv1d(1, 32, kernel_size=5, padding=2)`.

    `path` is `nn.NAME` (torch.nn) or `layers.NAME` (trick.layers, the layers torch lacks).
    The arguments of an `nn.Sequential` may be Ctors, or (name, Ctor) pairs for named children.
    """

    path: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def paths(self) -> Iterator[str]:
        """This call's path and those of the calls nested in its arguments."""
        yield self.path
        for arg in self.args:
            child = arg[1] if isinstance(arg, tuple) else arg
            if isinstance(child, Ctor):
                yield from child.paths()
