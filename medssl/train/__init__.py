"""Pre-training: the Lightning module, recipes, batched augmentation, checkpoints and monitors."""

from medssl.train.api import pretrain
from medssl.train.config import PretrainConfig

__all__ = ["PretrainConfig", "pretrain"]
