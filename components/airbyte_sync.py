"""airbyte_sync: trigger an Airbyte connection's sync and wait for it (instead of ``sync``)."""

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from components._images import image


@dsl.component(base_image=image("sync"), install_kfp_package=False)
def airbyte_sync(
    connection_id: str,
    job: Output[Dataset],
    metrics: Output[Metrics],
    server_url: str = "",
    timeout_seconds: float = 3600.0,
    poll_seconds: float = 3.0,
):
    """Run the sync of the Airbyte connection ``connection_id`` and wait until it ends.

    Airbyte extracts and loads into the warehouse's raw tables itself; the steps after this one are
    the same as after ``sync``. Reads: the Airbyte server ``server_url`` (empty: TAGIFAI_AIRBYTE_URL)
    and its credentials from the step's environment, never from parameters: TAGIFAI_AIRBYTE_TOKEN or
    the file named by TAGIFAI_AIRBYTE_TOKEN_FILE (a Kubernetes secret), or TAGIFAI_AIRBYTE_CLIENT_ID and
    TAGIFAI_AIRBYTE_CLIENT_SECRET. Writes: ``job``, a JSON record of the Airbyte job (job_id, status,
    attempts, rows_synced and bytes_synced when Airbyte reports them, seconds) with the same fields in
    its metadata, and ``metrics`` (rows_synced, bytes_synced, attempts, seconds). Polls every
    ``poll_seconds``, growing 1.5 times a poll up to 60 s. Fails with Airbyte's own failure messages when
    the job fails or is cancelled, and after ``timeout_seconds`` (the job is then cancelled).
    """
    import json
    from pathlib import Path

    from tagifai.airbyte import sync_connection

    result = sync_connection(connection_id, server_url or None, timeout=timeout_seconds, poll_interval=poll_seconds)
    record = {k: v for k, v in result.to_dict().items() if v is not None}
    Path(job.path).parent.mkdir(parents=True, exist_ok=True)
    Path(job.path).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    job.metadata.update(record)
    for name in ("rows_synced", "bytes_synced", "attempts", "seconds"):
        if record.get(name) is not None:
            metrics.log_metric(name, record[name])
