"""Anonymization: field policies applied while sharding, before data leaves.

- :mod:`~datamove.anonymize.policy` reads the YAML policy.
- :mod:`~datamove.anonymize.key` loads the key and fingerprints it.
- :mod:`~datamove.anonymize.actions` holds the vectorised column actions.
- :mod:`~datamove.anonymize.engine` applies a policy to record batches.
- :mod:`~datamove.anonymize.detect` finds personal data and suggests a policy.
- :mod:`~datamove.anonymize.kanon` measures k-anonymity of the output.
- :mod:`~datamove.anonymize.pseudonyms` keeps the re-identification map
  on-prem.
"""

from __future__ import annotations

import typing

from datamove._lazy import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:
    from datamove.anonymize.detect import (
        PII_TYPES,
        ColumnFinding,
        flagged_columns,
        match_values,
        scan_table,
        suggest_policy,
    )
    from datamove.anonymize.engine import Anonymizer
    from datamove.anonymize.kanon import KAnonymityCounter, KAnonymityReport
    from datamove.anonymize.key import (
        ENV_VAR,
        MIN_KEY_BYTES,
        AnonKey,
        check_key_fingerprint,
        load_key,
    )
    from datamove.anonymize.policy import (
        ACTIONS,
        ColumnRule,
        DropRule,
        GeneralizeRule,
        HashRule,
        KeepRule,
        MaskRule,
        NoiseRule,
        Policy,
        RedactRule,
        load_policy,
        parse_policy,
    )
    from datamove.anonymize.pseudonyms import (
        PSEUDONYM_SCHEMA,
        check_pseudonym_map_url,
        is_on_prem_url,
        merge_pseudonym_pairs,
    )

# Each name's submodule, imported on first use: a sync without a policy
# loads none of them (about 20 ms of every command's start-up).
_HOMES = {
    "ACTIONS": "policy",
    "AnonKey": "key",
    "Anonymizer": "engine",
    "ColumnFinding": "detect",
    "ColumnRule": "policy",
    "DropRule": "policy",
    "ENV_VAR": "key",
    "GeneralizeRule": "policy",
    "HashRule": "policy",
    "KAnonymityCounter": "kanon",
    "KAnonymityReport": "kanon",
    "KeepRule": "policy",
    "MIN_KEY_BYTES": "key",
    "MaskRule": "policy",
    "NoiseRule": "policy",
    "PII_TYPES": "detect",
    "PSEUDONYM_SCHEMA": "pseudonyms",
    "Policy": "policy",
    "RedactRule": "policy",
    "check_key_fingerprint": "key",
    "check_pseudonym_map_url": "pseudonyms",
    "flagged_columns": "detect",
    "is_on_prem_url": "pseudonyms",
    "load_key": "key",
    "load_policy": "policy",
    "match_values": "detect",
    "merge_pseudonym_pairs": "pseudonyms",
    "parse_policy": "policy",
    "scan_table": "detect",
    "suggest_policy": "detect",
}

__getattr__ = _lazy_exports(globals(), _HOMES)


__all__ = [
    "ACTIONS",
    "ENV_VAR",
    "MIN_KEY_BYTES",
    "PII_TYPES",
    "PSEUDONYM_SCHEMA",
    "AnonKey",
    "Anonymizer",
    "ColumnFinding",
    "ColumnRule",
    "DropRule",
    "GeneralizeRule",
    "HashRule",
    "KAnonymityCounter",
    "KAnonymityReport",
    "KeepRule",
    "MaskRule",
    "NoiseRule",
    "Policy",
    "RedactRule",
    "check_key_fingerprint",
    "check_pseudonym_map_url",
    "flagged_columns",
    "is_on_prem_url",
    "load_key",
    "load_policy",
    "match_values",
    "merge_pseudonym_pairs",
    "parse_policy",
    "scan_table",
    "suggest_policy",
]
