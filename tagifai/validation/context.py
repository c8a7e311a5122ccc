"""The process-wide Great Expectations context: ephemeral (in memory), built on first use.

It holds one pandas datasource with a whole-dataframe batch definition; SQL datasources of warehouses
are added to the same context by their backends. Use it under :data:`LOCK` (GX contexts are not
thread-safe). ``great_expectations`` is imported here, on first use only (about 8 s).
"""

from __future__ import annotations

import threading
from typing import Any

#: Held while the context (or anything taken from it) is used.
LOCK = threading.RLock()
_CONTEXT: Any = None  # (EphemeralDataContext, BatchDefinition), built on first use


def gx_context() -> tuple[Any, Any]:
    """The ephemeral GX context and its pandas whole-dataframe batch definition (made once)."""
    global _CONTEXT
    with LOCK:
        if _CONTEXT is None:
            _CONTEXT = _build()
        return _CONTEXT


def _build() -> tuple[Any, Any]:
    """A new ephemeral context (no analytics, no progress bars) with the pandas batch definition."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    import great_expectations as gx

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    asset = context.data_sources.add_pandas("tagifai_pandas").add_dataframe_asset("dataframe")
    return context, asset.add_batch_definition_whole_dataframe("whole_dataframe")
