"""Model adapters (load once in __init__, work in __call__), the model manifest and the local store."""
