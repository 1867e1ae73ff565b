"""The study grid: datasets × methods × backbones × protocols × label fractions × seeds."""

from medssl.study.config import StudyConfig, load_study
from medssl.study.grid import run_study

__all__ = ["StudyConfig", "load_study", "run_study"]
