"""Offline-by-construction environment. Import this module before any ML library.

`OFFLINE_ENV` is also handed to worker processes (local pool, Ray runtime_env).
"""

from __future__ import annotations

import os

OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "PYANNOTE_METRICS_ENABLED": "0",
    "DO_NOT_TRACK": "1",
    # onnxruntime (Silero VAD inside faster-whisper) has its own telemetry that resolves
    # mobile.events.data.microsoft.com from native code at import; DO_NOT_TRACK does not stop it, this does.
    "ORT_DISABLE_TELEMETRY": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply_offline_env() -> None:
    """Force the offline and no-telemetry variables (overriding anything the caller set)."""
    os.environ.update(OFFLINE_ENV)


apply_offline_env()
