"""The package layering that docs/layout.md describes, checked on the import statements."""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("data", "durr_tf", "agents")


def _modules():
    """{dotted module name: source path} of every module of the three packages."""
    found = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(REPO, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                    found[dotted.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(path):
    """The modules of ours a source file imports (`from x import y` counts x.y when it is one)."""
    with open(path) as handle:
        tree = ast.parse(handle.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in MODULES}


def _is_command(path):
    with open(path) as handle:
        return any(isinstance(node, ast.FunctionDef) and node.name == "main"
                   for node in ast.parse(handle.read()).body)


COMMANDS = {name for name, path in MODULES.items() if _is_command(path)}


def test_the_tree_has_the_packages_and_commands_the_layout_names():
    assert {"durr_tf.core", "durr_tf.training", "durr_tf.inference", "durr_tf.evaluation",
            "durr_tf.tools"} <= set(MODULES)
    assert {"durr_tf.train_restorer", "durr_tf.restore", "durr_tf.evaluate", "durr_tf.export",
            "durr_tf.demo", "agents.train_dqn"} <= COMMANDS


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_flow_one_way_and_no_library_module_imports_a_command(name):
    imported = _imports(MODULES[name])
    top = name.split(".")[0]
    allowed = {"data": {"data"}, "durr_tf": {"data", "durr_tf"},
               "agents": {"data", "durr_tf", "agents"}}[top]
    assert {module.split(".")[0] for module in imported} <= allowed
    if name not in COMMANDS:
        assert not imported & COMMANDS, f"{name} imports a command module"
    if name.startswith("durr_tf.core"):  # the core imports no other part of durr_tf
        assert all(not module.startswith("durr_tf.") or module.startswith("durr_tf.core")
                   for module in imported), imported
