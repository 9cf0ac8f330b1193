"""XGBoost screening models: training, evaluation, artifacts and the registry of versions."""
