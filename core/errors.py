"""Typed exceptions. Every user-facing failure is one of these, with a one-line reason."""

from __future__ import annotations


class WeightSpaceError(Exception):
    """Base class of every error the library raises on bad input; the CLI prints it as `error: ...`."""


class CheckpointError(WeightSpaceError, ValueError):
    """A checkpoint file cannot be read: malformed, truncated, unsafe, too large or not a network."""


class UnsafeCheckpointError(CheckpointError):
    """The file would need code execution (full-module pickle, TorchScript) to load."""


class UnsupportedLayerError(WeightSpaceError, ValueError):
    """The network uses a layer or operation the architecture description cannot represent."""


class ArchitectureError(WeightSpaceError, ValueError):
    """An architecture description is inconsistent (shapes that do not chain, bad parameters)."""


class UnknownActivationError(WeightSpaceError, ValueError):
    """The activation of a network is unknown and must be given (e.g. `--activation relu`)."""
