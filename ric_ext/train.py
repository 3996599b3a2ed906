"""Compatibility shim: the training code lives in :mod:`ric_ext.training`."""
from .training import TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer"]
