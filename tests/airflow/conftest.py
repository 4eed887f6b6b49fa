"""Set-up for the Airflow tests.

The tests skip when Apache Airflow is not installed (``scripts/install-airflow.sh``
installs it), unless ``DATAMOVE_REQUIRE_AIRFLOW=1``: then a missing Airflow is
an error, so that CI cannot pass by skipping them.

Airflow reads ``AIRFLOW_HOME`` once, when first imported, and creates folders
there; the pytest process gets a throwaway home before anything imports it.
Importing Airflow also installs a handler on the root logger and raises its
level; both are undone so that the rest of the suite logs as before. DAG runs
happen in child processes (see ``run_dags.py``), each with its own home.

This folder has no ``__init__.py`` on purpose: with one, pytest would import
it as a package named ``airflow`` and hide the real Airflow.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import shutil
import tempfile

import pytest

if importlib.util.find_spec("airflow") is None:
    if os.environ.get("DATAMOVE_REQUIRE_AIRFLOW") == "1":
        raise pytest.UsageError(
            "DATAMOVE_REQUIRE_AIRFLOW=1 but Apache Airflow is not installed; "
            "run scripts/install-airflow.sh"
        )
else:
    if "AIRFLOW_HOME" not in os.environ:
        _home = tempfile.mkdtemp(prefix="datamove-airflow-home-")
        os.environ["AIRFLOW_HOME"] = _home
        atexit.register(shutil.rmtree, _home, True)
    _root = logging.getLogger()
    _handlers, _level = list(_root.handlers), _root.level
    try:
        import airflow.sdk  # noqa: F401
    finally:
        _root.handlers[:] = _handlers
        _root.setLevel(_level)
