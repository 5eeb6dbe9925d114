"""MLflow tracking fed from the trail journals: config, client, sync (catch-up), live (in-trail), sweep_run (parent).

Nothing here imports mlflow at module import time: the trail process and `harness` CLI stay fast to start.
"""
