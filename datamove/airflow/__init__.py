"""Apache Airflow 3 operators for datamove (``pip install 'datamove[airflow]'``).

- :class:`DataMoveSyncOperator` runs :func:`datamove.sync` as a task, with
  credentials from Airflow connections, templated arguments, progress in the
  task log and the report in XCom. A retry resumes the interrupted sync.
- :class:`DataMoveVerifyOperator` runs :func:`datamove.verify`.
- :func:`storage_options_for` (a URL and a connection id) and
  :func:`storage_options_from_connection` (a ``Connection``) map an ``aws``,
  ``google_cloud_platform`` or ``wasb`` connection to fsspec storage
  options, for library calls from a ``@task``.

Importing :mod:`datamove` never imports Airflow; importing this module does,
and fails with an :class:`ImportError` that says what to install.
"""

from __future__ import annotations

try:
    import airflow
    import airflow.sdk
except ImportError as missing:
    raise ImportError(
        f"datamove.airflow needs Apache Airflow 3 ({missing}); install it with "
        "pip install 'datamove[airflow]'"
    ) from missing

if not str(getattr(airflow, "__version__", "")).startswith("3."):
    raise ImportError(
        f"datamove.airflow needs Apache Airflow 3, found {airflow.__version__}; "
        "upgrade with pip install 'datamove[airflow]'"
    )

from datamove.airflow.connections import storage_options_from_connection
from datamove.airflow.operators import (
    DataMoveSyncOperator,
    DataMoveTierApplyOperator,
    DataMoveVerifyOperator,
    storage_options_for,
)

__all__ = [
    "DataMoveSyncOperator",
    "DataMoveTierApplyOperator",
    "DataMoveVerifyOperator",
    "storage_options_for",
    "storage_options_from_connection",
]
