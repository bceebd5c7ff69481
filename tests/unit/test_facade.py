"""The public facade: complete, sorted, lazy, and free of I/O at import."""

from __future__ import annotations

import subprocess
import sys

import portscope


def test_all_is_sorted_and_resolves() -> None:
    assert portscope.__all__ == sorted(portscope.__all__)
    for name in portscope.__all__:
        assert getattr(portscope, name) is not None, name


def test_every_public_module_name_is_exported() -> None:
    # Names defined by the public-facing modules must be reachable from the facade.
    import portscope.errors as errors

    exported = set(portscope.__all__)
    for name in dir(errors):
        obj = getattr(errors, name)
        is_error = isinstance(obj, type) and issubclass(obj, Exception)
        if is_error and obj.__module__ == errors.__name__:
            assert name in exported, f"portscope.errors.{name} missing from portscope.__all__"


def test_unknown_attribute_raises() -> None:
    try:
        portscope.no_such_name  # noqa: B018
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("no AttributeError")


def test_import_loads_nothing_heavy() -> None:
    code = (
        "import sys, portscope; "
        "heavy = {'asyncio', 'sqlite3', 'rich', 'psutil', 'textual'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_imports_no_heavy_module() -> None:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "portscope", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    tops = {name.split(".")[0] for name in imported}
    assert not tops & {"asyncio", "sqlite3", "rich", "textual", "psutil"}, sorted(tops)
    assert "commands:" in out.stdout


def test_import_and_top_help_are_lean() -> None:
    # Every command line imports the facade; `portscope --help` must stay instant.
    code = "import sys; from portscope.cli import main; main(['--help'])"
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    )
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    lean = {"typing", "argparse", "dataclasses", "pathlib", "json", "portscope.models"}
    assert not imported & lean, sorted(imported & lean)
    assert "commands:" in out.stdout


def test_exports_are_not_shadowed_by_subpackages() -> None:
    # Importing every subpackage must not replace an exported function by a module of
    # the same name (the import system sets portscope.<sub> on the package).
    import importlib
    import types

    for sub in ("sockets", "registry", "scanner", "diagnose", "render", "cli"):
        importlib.import_module(f"portscope.{sub}")
    for name in portscope.__all__:
        value = getattr(portscope, name)
        assert not isinstance(value, types.ModuleType), f"portscope.{name} is a module"


def test_type_checking_block_reexports_every_name() -> None:
    # mypy --strict users need `from m import X as X` for every public name.
    import ast
    from pathlib import Path

    tree = ast.parse(Path(portscope.__file__).read_text())
    reexported = {
        alias.asname
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("portscope")
        for alias in node.names
        if alias.asname == alias.name
    }
    assert reexported == set(portscope.__all__)
