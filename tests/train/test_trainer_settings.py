"""Trainer settings chosen from the machine: precision and the logging interval."""

from __future__ import annotations

import pytest

from medssl.train import api
from medssl.train.config import PretrainConfig


@pytest.mark.parametrize(("amx", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_precision_on_cpu_follows_native_bf16_support(monkeypatch, amx: bool, expected: str) -> None:
    monkeypatch.setattr(api, "cpu_has_bf16_matmul", lambda: amx)
    monkeypatch.delenv(api.PRECISION_ENV, raising=False)
    assert api._precision(PretrainConfig(accelerator="cpu")) == expected


def test_explicit_precision_wins(monkeypatch) -> None:
    monkeypatch.setattr(api, "cpu_has_bf16_matmul", lambda: True)
    assert api._precision(PretrainConfig(accelerator="cpu", precision="32-true")) == "32-true"


@pytest.mark.parametrize(("steps", "expected"), [(0, 1), (7, 7), (50, 50), (500, 50)])
def test_logging_interval_is_lightnings_default_capped_at_one_epoch(steps: int, expected: int) -> None:
    assert api.log_every_n_steps(steps) == expected


@pytest.mark.parametrize("forced", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("amx", [True, False])
def test_environment_variable_forces_what_auto_means(monkeypatch, amx: bool, forced: str) -> None:
    monkeypatch.setattr(api, "cpu_has_bf16_matmul", lambda: amx)
    monkeypatch.setenv(api.PRECISION_ENV, forced)
    assert api._precision(PretrainConfig(accelerator="cpu")) == forced
    assert api._precision(PretrainConfig(accelerator="cpu", precision="32-true")) == "32-true"


def test_a_bad_forced_precision_is_refused_by_name(monkeypatch) -> None:
    from medssl.errors import ConfigError

    monkeypatch.setenv(api.PRECISION_ENV, "fp8")
    with pytest.raises(ConfigError, match="MEDSSL_PRECISION=fp8"):
        api._precision(PretrainConfig(accelerator="cpu"))
