"""The public surface is what datamove/__init__.py exports, on purpose."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

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


def test_the_lazy_packages_resolve_every_advertised_name() -> None:
    # Their names are imported on first use; each must still resolve, and
    # nothing may be mapped that __all__ does not advertise.
    import datamove.anonymize
    import datamove.tiering

    for package in (datamove.anonymize, datamove.tiering):
        assert set(package._HOMES) == set(package.__all__), package.__name__
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"


def test_a_plain_sync_loads_no_anonymization_or_tier_planning(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.csv").write_text("id,name\n1,x\n2,y\n")
    script = (
        "import sys, datamove\n"
        f"datamove.sync({str(source)!r}, {str(tmp_path / 'dst')!r}, workers=1)\n"
        "loaded = [m for m in sys.modules if m.startswith('datamove.anonymize')\n"
        "          or m in ('datamove.tiering.planner', 'datamove.tiering.logs')]\n"
        "print(sorted(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
