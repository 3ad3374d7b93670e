"""The architecture the code promises (docs/architecture.md), checked from the source itself.

* the import graph between the top-level packages has no cycle: tsn -> prototxt_port only;
  prototxt_port imports nothing from tsn; reproduce and bench sit on top;
* inside tsn, no cycle between sub-packages / top modules (config <-> engine was one);
* library packages hold no benchmark;
* `tsn --help` and `tsn <command> --help` import neither torch nor OpenCV (lazy CLI);
* the BN-Inception layout reaches `python -m prototxt_port convert` through its entry point.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("tsn", "prototxt_port", "reproduce", "bench")
ALLOWED = {"tsn": {"prototxt_port"}, "prototxt_port": set(),
           "reproduce": {"tsn", "prototxt_port"}, "bench": {"tsn", "prototxt_port"}}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _imports(path: Path) -> list[str]:
    """Absolute names imported anywhere in the file (functions included: a lazy import is still
    a dependency), except under `if TYPE_CHECKING:`. `from pkg import name` counts as
    `pkg.name`, which resolves to the submodule when `name` is one (`from tsn import modality`
    depends on tsn.modality, not on what tsn/__init__.py may load lazily) and to `pkg`
    otherwise."""
    names = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def _graph(key) -> dict[str, set[str]]:
    """Edges between `key(module)` groups of the repository's own modules."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = defaultdict(set)
    for mod, path in modules.items():
        for name in _imports(path):
            target = resolve(name)
            if target and key(target) != key(mod):
                edges[key(mod)].add(key(target))
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, stack)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node, [])):
            return found
    return None


def test_top_level_packages_form_no_cycle_and_tsn_depends_on_prototxt_port_only():
    edges = _graph(lambda m: m.split(".")[0])
    assert _cycle(edges) is None
    for pkg, targets in edges.items():
        assert targets <= ALLOWED[pkg], f"{pkg} imports {sorted(targets - ALLOWED[pkg])}"
    assert edges.get("tsn", set()) == {"prototxt_port"}
    assert not edges.get("prototxt_port")


def test_prototxt_port_imports_nothing_from_tsn():
    for path in (REPO / "prototxt_port").rglob("*.py"):
        bad = [n for n in _imports(path) if n == "tsn" or n.startswith("tsn.")]
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_tsn_subpackages_form_no_cycle():
    def key(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2]) if parts[0] == "tsn" and len(parts) > 1 else parts[0]

    assert _cycle(_graph(key)) is None


def test_library_packages_hold_no_benchmark():
    for pkg in ("tsn", "prototxt_port"):
        found = [p.relative_to(REPO) for p in (REPO / pkg).rglob("bench*.py")]
        assert not found, f"benchmarks belong in bench/: {found}"


def _heavy_imports(*args: str) -> set[str]:
    """torch / cv2 among the modules `python -X importtime -m tsn.cli ARGS` imports."""
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "tsn.cli", *args],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    loaded = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines()
              if line.startswith("import time:")}
    return loaded & {"torch", "cv2"}


def test_tsn_help_imports_neither_torch_nor_opencv():
    assert _heavy_imports("--help") == set()


def _commands() -> list[str]:
    from tsn.cli import COMMANDS  # tsn.cli imports no command module

    return sorted(COMMANDS)


def test_every_command_is_covered():
    assert {"train", "test", "fuse", "weights", "synth", "lists", "extract",
            "predict"} <= set(_commands())


@pytest.mark.parametrize("command", _commands())
def test_command_help_imports_neither_torch_nor_opencv(command):
    assert _heavy_imports(command, "--help") == set()


def test_import_tsn_is_light_and_tsn_predict_is_the_function():
    """`tsn.predict` (the notebook API) loads tsn/prediction.py on first use only."""
    code = ("import sys, tsn; light = not {'torch', 'cv2'} & set(sys.modules); "
            "import tsn.prediction; f = tsn.predict; "
            "print(light, callable(f), f is tsn.prediction.predict, f is tsn.predict)")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["True"] * 4


def test_bn_inception_layout_is_found_through_its_entry_point():
    """A fresh interpreter that imports nothing from tsn still converts BN-Inception weights to
    the keys tsn trains with (pyproject.toml: [project.entry-points."prototxt_port.layouts"])."""
    code = ("import sys; from prototxt_port.convert import layouts; "
            "print(sorted(layouts()))")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "bn_inception" in res.stdout
