"""Methods in a study or pre-training config are checked against the registry when the config is read."""

from __future__ import annotations

import pytest

from medssl.config import validate
from medssl.errors import ConfigError
from medssl.methods import METHODS
from medssl.study.config import StudyConfig
from medssl.train.config import PretrainConfig


def test_an_unknown_method_is_refused_naming_the_registered_ones() -> None:
    choices = ", ".join(METHODS)
    with pytest.raises(
        ConfigError, match=rf"methods: Value error, method 'simclrr' is unknown; choose one of: {choices}"
    ):
        validate(StudyConfig, {"datasets": {"d": {}}, "methods": ["vicreg", "simclrr"]})
    with pytest.raises(ConfigError, match=r"^pre\.yaml: method: .*'ijepa' is unknown"):
        validate(PretrainConfig, {"method": "ijepa"}, source="pre.yaml")
    study = validate(StudyConfig, {"datasets": {"d": {}}, "methods": list(METHODS)})
    assert study.methods == list(METHODS)
