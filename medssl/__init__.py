"""medssl: in-domain self-supervised pre-training vs ImageNet transfer on small medical image datasets."""

from medssl.models.encoder import load_encoder

__all__ = ["load_encoder"]
__version__ = "0.1.0"
