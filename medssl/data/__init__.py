"""Data: source adapters, groups, splits (and cross-validation folds), and the decoded pixel cache."""

from medssl.data.dataset import DataConfig, PreparedData, prepare_data, prepare_folds, read_table
from medssl.data.types import ImageRecord, ImageTable

__all__ = [
    "DataConfig",
    "ImageRecord",
    "ImageTable",
    "PreparedData",
    "prepare_data",
    "prepare_folds",
    "read_table",
]
