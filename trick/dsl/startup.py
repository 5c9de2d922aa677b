"""What the front end does first, so that `trickc check` starts fast. Imported by
trick/dsl/__init__.py before anything else of trick, so it runs before the package defines a
single dataclass or imports Lark.

1. **Dataclass methods compiled once per machine.** `@dataclass` writes the source of each
   class's `__init__`, `__repr__`, `__eq__`, `__hash__` (and, frozen, `__setattr__` and
   `__delattr__`) and compiles it with `exec` every time the module is imported: for the
   ~55 dataclasses a check imports, that was a third of the time `trickc check` spends in
   Python (bytecode caches keep compiled modules, but not these). On CPython 3.10-3.12
   (whose `dataclasses._create_fn` is the one function that does it) the compiled code of
   trick's classes is kept in a file keyed by its source text, so a later start executes
   the same code objects instead of compiling them again: the classes are the same (the
   same text gives the same code; a changed class has another text, compiled anew). The
   file is marshal data in the user's cache folder (XDG_CACHE_HOME, else ~/.cache), named
   for the interpreter's bytecode version, written at exit when something new was
   compiled; a missing, unreadable or damaged file only means compiling as before. Other
   packages' dataclasses are left alone. TRICK_NO_CODE_CACHE=1 turns it off.
2. **Lark without `regex`.** Lark imports the third-party `regex` module when it is
   installed, for grammars with Unicode categories or `Lark(regex=True)`; trick.lark uses
   neither, and importing `regex` costs more than the rest of Lark's start. Lark is imported
   here with `regex` hidden (and `regex` is importable again right after), so it uses `re`.
"""

from __future__ import annotations

import dataclasses
import marshal
import os
import sys

_FILE = None  # the cache file, when the cache is on
_known: dict[str, object] = {}  # source text -> code, from the file
_new: dict[str, object] = {}  # compiled in this process
_MAX_ENTRIES = 4000  # past this the file keeps only what this process used


def _cache_file() -> str | None:
    tag = sys.implementation.cache_tag  # e.g. cpython-311: marshal and bytecode are per version
    if tag is None:
        return None
    base = os.environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):  # the XDG rule: a relative one is ignored
        home = os.path.expanduser("~")
        if not os.path.isabs(home):  # no home folder: no cache (never one relative to the working folder)
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "trick", f"dataclass-code.{tag}.marshal")


def _load(path: str) -> dict:
    try:
        with open(path, "rb") as handle:
            data = marshal.loads(handle.read())  # (marshal.load reads a file object piece by piece: far slower)
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    if not isinstance(data, dict):
        return {}
    code = type(_load.__code__)
    return {k: v for k, v in data.items() if type(k) is str and type(v) is code}


def _save() -> None:
    if not _new or _FILE is None:
        return
    entries = {**_known, **_new} if len(_known) + len(_new) <= _MAX_ENTRIES else dict(_new)
    try:
        os.makedirs(os.path.dirname(_FILE), exist_ok=True)
        temporary = f"{_FILE}.{os.getpid()}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(marshal.dumps(entries))
        os.replace(temporary, _FILE)  # atomic: a reader sees the old file or the new one
    except (OSError, ValueError):
        pass


def _install() -> None:
    global _FILE
    original = getattr(dataclasses, "_create_fn", None)
    if original is None or os.environ.get("TRICK_NO_CODE_CACHE") or sys.version_info[:2] not in ((3, 10), (3, 11), (3, 12)):
        return
    if original.__code__.co_varnames[:6] != ("name", "args", "body", "globals", "locals", "return_type"):
        return  # not the function this was written against
    _FILE = _cache_file()
    if _FILE is None:
        return
    _known.update(_load(_FILE))
    missing = dataclasses.MISSING

    def _create_fn(name, args, body, *, globals=None, locals=None, return_type=missing):
        # dataclasses._create_fn of CPython 3.10-3.12, with the compiled text looked up first
        if not (globals or {}).get("__name__", "").startswith("trick."):
            return original(name, args, body, globals=globals, locals=locals, return_type=return_type)
        if locals is None:
            locals = {}
        return_annotation = ""
        if return_type is not missing:
            locals["_return_type"] = return_type
            return_annotation = "->_return_type"
        args = ",".join(args)
        body = "\n".join(f"  {b}" for b in body)
        txt = f" def {name}({args}){return_annotation}:\n{body}"
        local_vars = ", ".join(locals.keys())
        txt = f"def __create_fn__({local_vars}):\n{txt}\n return {name}"
        code = _known.get(txt) or _new.get(txt)
        if code is None:
            code = _new[txt] = compile(txt, "<string>", "exec", dont_inherit=True)  # as exec(txt) in dataclasses.py
        ns: dict = {}
        exec(code, globals, ns)
        return ns["__create_fn__"](**locals)

    dataclasses._create_fn = _create_fn
    import atexit

    atexit.register(_save)


def _import_lark() -> None:
    if "lark" in sys.modules or "regex" in sys.modules:
        return
    sys.modules["regex"] = None  # `import regex` now raises ImportError
    try:
        import lark  # noqa: F401
    finally:
        del sys.modules["regex"]


_install()
_import_lark()
