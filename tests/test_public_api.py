"""The public surface is what datamove/__init__.py exports, on purpose."""

from __future__ import annotations

import subprocess
import sys
import types

import datamove


def test_all_names_exist_and_nothing_else_is_advertised() -> None:
    for name in datamove.__all__:
        assert hasattr(datamove, name), name
    public = {
        name
        for name, value in vars(datamove).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    undeclared = public - set(datamove.__all__)
    assert not undeclared, f"exported but not in __all__: {sorted(undeclared)}"


def test_every_error_derives_from_the_root() -> None:
    for name in datamove.__all__:
        value = getattr(datamove, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, datamove.DatamoveError), name


def test_importing_datamove_does_not_import_dask_or_airflow() -> None:
    code = (
        "import sys, datamove; "
        "print('distributed' in sys.modules, 'airflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"]
