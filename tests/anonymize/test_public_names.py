"""datamove.anonymize exports what its __all__ lists, and nothing else."""

from __future__ import annotations

import types

import datamove.anonymize as anonymize


def test_all_names_exist_and_nothing_else_is_advertised() -> None:
    for name in anonymize.__all__:
        assert hasattr(anonymize, name), name
    public = {
        name
        for name, value in vars(anonymize).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public == set(anonymize.__all__)
