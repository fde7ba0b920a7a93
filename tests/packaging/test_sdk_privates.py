"""Every private Singer SDK name the shipped code overrides or reads is in docs/sdk-deviations.md.

The SDK's private names (a leading underscore: methods, properties, class attributes and the
``self._x`` attributes its classes set, and its private modules) are read from its source. The
shipped packages are then scanned:

- a class deriving from an SDK class that defines, sets or reads (``self._x``, ``super()._x``,
  ``cls._x``) a private name one of its SDK base classes defines;
- any other ``obj._x`` whose name the SDK defines and the repository's own code does not;
- an import from a private SDK module or of a private SDK name.

Each finding must be named in the page as ``Class._name`` (one of the SDK classes that defines it)
or by the private module's dotted path.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import tomllib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import singer_sdk

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "sdk-deviations.md"
PACKAGES: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
    "hatch"
]["build"]["targets"]["wheel"]["packages"]
SDK_ROOT = Path(singer_sdk.__file__).parent


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _assigned_names(target: ast.expr, receiver: str | None) -> Iterator[str]:
    """Names bound by an assignment target: ``x`` (class level) or ``<receiver>.x``."""
    if isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _assigned_names(element, receiver)
    elif receiver is None and isinstance(target, ast.Name):
        yield target.id
    elif (
        receiver is not None
        and isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id == receiver
    ):
        yield target.attr


def _class_names(node: ast.ClassDef) -> set[str]:
    """What a class body defines: methods, class attributes, and ``self.x = ...`` in methods."""
    names: set[str] = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(item.name)
            for sub in ast.walk(item):
                targets = (
                    sub.targets
                    if isinstance(sub, ast.Assign)
                    else [sub.target]
                    if isinstance(sub, ast.AnnAssign | ast.AugAssign)
                    else []
                )
                for target in targets:
                    names.update(_assigned_names(target, "self"))
        elif isinstance(item, ast.Assign):
            for target in item.targets:
                names.update(_assigned_names(target, None))
        elif isinstance(item, ast.AnnAssign):
            names.update(_assigned_names(item.target, None))
    return names


def _module_name(path: Path, root: Path, package: str) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((package, *parts))


@dataclass(frozen=True)
class SdkPrivates:
    """The SDK's private names: per (module, class), and its private modules."""

    by_class: dict[tuple[str, str], set[str]]
    private_modules: set[str]

    def classes_defining(self, name: str) -> set[str]:
        return {cls for (_, cls), names in self.by_class.items() if name in names}


def sdk_privates() -> SdkPrivates:
    by_class: dict[tuple[str, str], set[str]] = {}
    modules: set[str] = set()
    for path in sorted(SDK_ROOT.rglob("*.py")):
        module = _module_name(path, SDK_ROOT, "singer_sdk")
        if any(_private(part) for part in module.split(".")):
            modules.add(module)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                private = {n for n in _class_names(node) if _private(n)}
                by_class.setdefault((module, node.name), set()).update(private)
    return SdkPrivates(by_class, modules)


@dataclass(frozen=True)
class Finding:
    """One private SDK name the code relies on, and where."""

    names: frozenset[str]  # the ways the page may name it: "Class._name" or a module path
    where: str


def _own_modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        root = ROOT / package
        for path in sorted(root.rglob("*.py")):
            yield _module_name(path, root, package), path


def _sdk_bases(module: str, class_name: str) -> list[tuple[str, str]]:
    """The (module, name) of every SDK class in the MRO of one of our classes."""
    cls = getattr(importlib.import_module(module), class_name, None)
    if not inspect.isclass(cls):
        return []  # a class defined inside a function: not a plugin hook
    return [
        (base.__module__, base.__name__)
        for base in inspect.getmro(cls)
        if base.__module__.split(".")[0] == "singer_sdk"
    ]


def _receiver(node: ast.Attribute) -> str:
    value = node.value
    if isinstance(value, ast.Name):
        return value.id
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "super"
    ):
        return "super()"
    return ""


def _import_findings(tree: ast.Module, sdk: SdkPrivates, where: str) -> Iterator[Finding]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("singer_sdk"):
            module = node.module or ""
            if module in sdk.private_modules:
                yield Finding(frozenset({module}), f"{where}: from {module} import ...")
            for alias in node.names:
                if _private(alias.name):
                    yield Finding(frozenset({f"{module}.{alias.name}"}), f"{where}: {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in sdk.private_modules:
                    yield Finding(frozenset({alias.name}), f"{where}: import {alias.name}")


def _own_names(trees: list[ast.Module]) -> set[str]:
    """Every name the repository's own classes and functions define."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                names.update(_class_names(node))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
    return names


def _subclass_findings(
    module: str, node: ast.ClassDef, sdk: SdkPrivates, where: str, seen: set[int]
) -> Iterator[Finding]:
    """Private names of its SDK bases that a class defines or reads through self/cls/super()."""
    inherited: dict[str, set[str]] = defaultdict(set)
    for base in _sdk_bases(module, node.name):
        for name in sdk.by_class.get(base, set()):
            inherited[name].add(f"{base[1]}.{name}")
    if not inherited:
        return
    for name in _class_names(node) & inherited.keys():
        yield Finding(frozenset(inherited[name]), f"{where}: {node.name} defines {name}")
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and _receiver(sub) in ("self", "cls", "super()"):
            seen.add(id(sub))
            if sub.attr in inherited:
                names = frozenset(inherited[sub.attr])
                yield Finding(names, f"{where}: {node.name} uses {sub.attr}")


def _foreign_findings(
    tree: ast.Module, sdk: SdkPrivates, own: set[str], where: str, seen: set[int]
) -> Iterator[Finding]:
    """``obj._x`` on another object, where only the SDK defines ``_x``."""
    for sub in ast.walk(tree):
        if (
            isinstance(sub, ast.Attribute)
            and id(sub) not in seen
            and _private(sub.attr)
            and sub.attr not in own
            and _receiver(sub) not in ("self", "cls")
        ):
            owners = sdk.classes_defining(sub.attr)
            if owners:
                names = frozenset(f"{owner}.{sub.attr}" for owner in owners)
                yield Finding(names, f"{where}:{sub.lineno}: .{sub.attr}")


def code_findings(sdk: SdkPrivates) -> list[Finding]:
    """Every private SDK name the shipped packages override, set, read or import."""
    modules = [
        (module, path, ast.parse(path.read_text(encoding="utf-8")))
        for module, path in _own_modules()
    ]
    own = _own_names([tree for _, _, tree in modules])
    findings: list[Finding] = []
    for module, path, tree in modules:
        where = str(path.relative_to(ROOT))
        findings.extend(_import_findings(tree, sdk, where))
        seen: set[int] = set()  # self/cls/super() attributes inside SDK subclasses
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                findings.extend(_subclass_findings(module, node, sdk, where, seen))
        findings.extend(_foreign_findings(tree, sdk, own, where, seen))
    return findings


@functools.cache
def findings() -> tuple[Finding, ...]:
    """The scan, once per test session (it imports every shipped module)."""
    return tuple(code_findings(sdk_privates()))


def test_the_scan_finds_what_the_page_already_names() -> None:
    """The scanner itself: it sees known uses (so an empty list cannot pass by accident)."""
    found = {name for f in findings() for name in f.names}
    for known in (
        "Stream._generate_record_messages",
        "Target._process_record_message",
        "Sink._singer_validate_message",
        "singer_sdk.helpers._batch",
    ):
        assert known in found


def test_every_private_sdk_name_the_code_relies_on_is_listed() -> None:
    page = DOC.read_text(encoding="utf-8")
    missing = sorted(
        f"{' or '.join(sorted(f.names))}  ({f.where})"
        for f in findings()
        if not any(name in page for name in f.names)
    )
    assert not missing, "not in docs/sdk-deviations.md:\n" + "\n".join(missing)
