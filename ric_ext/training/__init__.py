"""Training the RIC networks (docs/scheme.md#training). API: ``Trainer(TrainConfig(...)).train()``;
CLI: ``python -m ric_ext train``. The loop is in trainer.py; each concern has its own small module."""

from .config import TrainConfig
from .trainer import Trainer

__all__ = ["TrainConfig", "Trainer"]
