"""voxflow: batch voice-health screening on Prefect, Dask, MongoDB and Redis."""

__version__ = "0.1.0"
