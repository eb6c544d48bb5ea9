"""Research code of rupture: training, evaluation and data preparation. Never imported by the runtime
packages (`pipeline`, `models`); used by the thin entry points in `scripts/` (run them as
`.venv/bin/python scripts/NAME.py`: Python puts `scripts/` on the path, so `import research` works with no
`sys.path` edits) and by the tests (`pythonpath = ["scripts"]` in pyproject.toml)."""
