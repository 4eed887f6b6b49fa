"""Storage tiers from access patterns, with the cost shown.

Read access history (:func:`read_access_logs`, :func:`scan_access_times`),
describe the objects (:class:`ObjectInfo`), then :func:`plan_tiers` assigns
each a hot, cold or archive tier under a :class:`TierPolicy` and a
:class:`PriceTable`, fee-aware, and costs all-hot, the plan and automatic
tiering over the horizon. :func:`write_cost_chart` draws that comparison.
"""

from __future__ import annotations

import typing

from datamove._lazy import lazy_exports as _lazy_exports

if typing.TYPE_CHECKING:
    from datamove.tiering.access import (
        AccessStats,
        Attribution,
        ObjectInfo,
        PathMapping,
        attribute_events,
        hive_partition,
        normalize_path,
    )
    from datamove.tiering.chart import write_cost_chart
    from datamove.tiering.cost import (
        CostBreakdown,
        CostComparison,
        MonthlyCost,
        ReadForecast,
        ScenarioCost,
    )
    from datamove.tiering.logs import (
        AccessEvent,
        LogKind,
        LogReadStats,
        detect_log_kind,
        read_access_logs,
        scan_access_times,
    )
    from datamove.tiering.planner import TierAssignment, TierPlan, plan_tiers
    from datamove.tiering.policy import (
        DEFAULT_CLASSES,
        TIERS,
        PartitionOverride,
        TierPolicy,
        TierRule,
        default_policy,
        load_policy,
        parse_policy,
    )
    from datamove.tiering.prices import (
        AutoTiering,
        ClassPrice,
        PriceTable,
        load_prices,
        parse_prices,
        provider_for_protocol,
    )

# Each name's submodule, imported on first use: a sync needs only the price
# tables, not the log readers, the planner or the chart (about 27 ms).
_HOMES = {
    "AccessEvent": "logs",
    "AccessStats": "access",
    "Attribution": "access",
    "AutoTiering": "prices",
    "ClassPrice": "prices",
    "CostBreakdown": "cost",
    "CostComparison": "cost",
    "DEFAULT_CLASSES": "policy",
    "LogKind": "logs",
    "LogReadStats": "logs",
    "MonthlyCost": "cost",
    "ObjectInfo": "access",
    "PartitionOverride": "policy",
    "PathMapping": "access",
    "PriceTable": "prices",
    "ReadForecast": "cost",
    "ScenarioCost": "cost",
    "TIERS": "policy",
    "TierAssignment": "planner",
    "TierPlan": "planner",
    "TierPolicy": "policy",
    "TierRule": "policy",
    "attribute_events": "access",
    "default_policy": "policy",
    "detect_log_kind": "logs",
    "hive_partition": "access",
    "load_policy": "policy",
    "load_prices": "prices",
    "normalize_path": "access",
    "parse_policy": "policy",
    "parse_prices": "prices",
    "plan_tiers": "planner",
    "provider_for_protocol": "prices",
    "read_access_logs": "logs",
    "scan_access_times": "logs",
    "write_cost_chart": "chart",
}

__getattr__ = _lazy_exports(globals(), _HOMES)


__all__ = [
    "DEFAULT_CLASSES",
    "TIERS",
    "AccessEvent",
    "AccessStats",
    "Attribution",
    "AutoTiering",
    "ClassPrice",
    "CostBreakdown",
    "CostComparison",
    "LogKind",
    "LogReadStats",
    "MonthlyCost",
    "ObjectInfo",
    "PartitionOverride",
    "PathMapping",
    "PriceTable",
    "ReadForecast",
    "ScenarioCost",
    "TierAssignment",
    "TierPlan",
    "TierPolicy",
    "TierRule",
    "attribute_events",
    "default_policy",
    "detect_log_kind",
    "hive_partition",
    "load_policy",
    "load_prices",
    "normalize_path",
    "parse_policy",
    "parse_prices",
    "plan_tiers",
    "provider_for_protocol",
    "read_access_logs",
    "scan_access_times",
    "write_cost_chart",
]
