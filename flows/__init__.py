"""Prefect flows: the entrypoints that prefect.yaml deploys and the CLI runs."""
