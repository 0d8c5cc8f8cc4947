"""Imports run one way: no cycles, no ``_private`` names across packages, layers in order.

Reads every import (module-level and function-local: a lazy import is still a dependency) of
every module in ``tfkws/`` and ``firmware_gen/`` with ``ast``, without importing anything, as
``/work/shared/tools/import_cycles.py`` does. The layer table is the architecture of README.md's
"Architecture" section: a package may import its own layer and the layers below, never above.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("tfkws", "firmware_gen")

# tfkws's layers, bottom to top (a package is ``tfkws.<name>``; a top-level module counts as one).
LAYERS: list[tuple[str, ...]] = [
    # version, error types, atomic writes, progress lines, TensorFlow log silencing
    ("tfkws", "tfkws.errors", "tfkws.atomic", "tfkws.progress", "tfkws.quiet"),
    ("tfkws.data",),  # datasets, audio, augmentation
    ("tfkws.features",),  # feature extraction (and features of dataset clips)
    ("tfkws.layers",),  # custom Keras layers
    ("tfkws.models",),  # registered model builders and the catalog
    ("tfkws.folding",),  # graph rewrites: BN/branch folding, slimmable width extraction
    ("tfkws.quantization",),  # PTQ calibration clips, QAT graphs
    ("tfkws.runs",),  # the run folder: config, file names, its trained model
    ("tfkws.training",),  # trainer, phases, distillation, QAT fine-tuning
    ("tfkws.conversion",),  # .tflite conversion, export of a run, model metadata
    ("tfkws.verification",),  # TFLM / LiteRT runs, parity, evaluation
    ("tfkws.streaming",),  # continuous audio: frame-by-frame features, sliding window, detector
    # pipelines over the layers below
    ("tfkws.slimmable", "tfkws.firmware", "tfkws.demo", "tfkws.zoo"),
    ("tfkws.cli",),  # absl command-line front ends
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).rglob("*.py")):
            name = ".".join(f.relative_to(REPO).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = f
    return mods


MODULES = _modules()


def _imports(module: str, path: Path) -> list[tuple[str, str | None]]:
    """(imported module of this tree, imported name or None) for every import in ``path``;
    imports of other distributions are left out."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[tuple[str, str | None]] = []
        if isinstance(node, ast.Import):
            targets = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                parts = module.split(".")
                parts = parts if path.name == "__init__.py" else parts[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                targets.append((full if full in MODULES else base, a.name))
        for target, name in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.append((target, name))
    return found


IMPORTS = {m: _imports(m, f) for m, f in MODULES.items()}
EDGES = {m: {t for t, _ in imps} for m, imps in IMPORTS.items()}


def _package(module: str) -> str:
    """``tfkws.<name>`` for tfkws (``tfkws`` for its ``__init__``), the top package otherwise."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "tfkws" else parts[0]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_the_import_reader_sees_the_tree() -> None:
    """Guards the other tests against passing on an empty or unread tree."""
    assert {"tfkws.cli.main", "tfkws.runs.model", "firmware_gen.cli"} <= set(MODULES)
    assert "tfkws.models.registry" in EDGES["tfkws.models.catalog"]
    # function-local imports count: the CLI imports its commands' pipelines lazily
    assert "tfkws.slimmable.select" in EDGES["tfkws.cli.slim_cmd"]


def test_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert _cycles(EDGES) == []


def test_no_private_names_across_packages() -> None:
    bad = [
        f"{m} imports {t}.{name}"
        for m, imps in IMPORTS.items()
        for t, name in imps
        if name
        and name.startswith("_")
        and not name.startswith("__")
        and t.split(".")[:2] != m.split(".")[:2]
    ]
    assert bad == []


def test_every_tfkws_package_has_a_layer() -> None:
    packages = {_package(m) for m in MODULES if m.startswith("tfkws")}
    assert sorted(packages - set(RANK)) == [], "add the new package to LAYERS (and the README)"


def test_tfkws_imports_run_down_the_layers() -> None:
    """``layers -> models -> folding/quantization -> runs -> training -> conversion ->
    verification -> pipelines -> cli``: nothing imports a layer above its own."""
    upward = [
        f"{m} ({_package(m)}) imports {t} ({_package(t)})"
        for m, targets in EDGES.items()
        if m.startswith("tfkws")
        for t in sorted(targets)
        if t.startswith("tfkws") and RANK[_package(t)] > RANK[_package(m)]
    ]
    assert upward == []


def test_firmware_gen_imports_nothing_from_tfkws() -> None:
    bad = [
        f"{m} imports {t}"
        for m, targets in EDGES.items()
        if m.startswith("firmware_gen")
        for t in sorted(targets)
        if t.startswith("tfkws")
    ]
    assert bad == []
