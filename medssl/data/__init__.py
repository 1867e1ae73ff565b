"""Data: source adapters, splits, and the decoded pixel cache."""

from medssl.data.dataset import DataConfig, PreparedData, prepare_data, read_table
from medssl.data.types import ImageRecord, ImageTable

__all__ = ["DataConfig", "ImageRecord", "ImageTable", "PreparedData", "prepare_data", "read_table"]
