"""Exception hierarchy.

    RuptureError                  base; every error the pipeline raises on purpose
    ├── ConfigError               bad or unknown config key, wrong type (exit code 2 at startup)
    ├── UsageError                bad command line or manifest (exit code 2)
    ├── ModelError                a model is missing, fails its hash check, or cannot load
    │   └── ModelIntegrityError   a weight file's sha256 differs from the manifest (tampering/corruption)
    ├── ConsentError              a session has no recorded consent: it is refused, never processed
    └── SessionError              one session failed; carries the stage that failed
        └── AudioError            unreadable, empty or silent audio

Messages say what to do next and never contain transcript text.
"""

from __future__ import annotations


class RuptureError(Exception):
    """Base class."""


class ConfigError(RuptureError):
    pass


class UsageError(RuptureError):
    pass


class ModelError(RuptureError):
    pass


class ModelIntegrityError(ModelError):
    pass


class ConsentError(RuptureError):
    pass


class SessionError(RuptureError):
    def __init__(self, message: str, stage: str = "unknown") -> None:
        super().__init__(message)
        self.stage = stage


class AudioError(SessionError):
    def __init__(self, message: str) -> None:
        super().__init__(message, stage="audio")
