"""Stores: MongoDB results (pymongo), Redis cache and metrics, Parquet features."""
