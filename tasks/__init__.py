"""Prefect tasks and the Dask work they fan out: thin wiring over features/, models/ and store/."""
