"""MLflow tracking fed from the trail journals.

config (schema, the sweep's experiment name), client (URIs, bounded HTTP, sqlite lock retries), target (a trail's
store), cursor (what is synced, one syncer at a time), metadata (run name, params, tags), run (a trail's run over its
life), sync (the exactly-once protocol, `harness sync`), sweep_run (the sweep's summary run and its report), view
(the sweep's view in MLflow's UI and its link), tracker (one process following a whole sweep), sweep_tracking (what
a sweep command starts and ends), live (a trail's own sync where no tracker follows it).

Nothing here imports mlflow at module import time: the trail process and `harness` CLI stay fast to start.
"""
