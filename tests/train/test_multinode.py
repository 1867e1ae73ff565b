"""Multi-node DDP for one big cell: ``num_nodes`` reaches the Lightning Trainer, which takes its ranks from
SLURM, and a SLURM pre-training job asks for the nodes and one task per device."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytorch_lightning.plugins.environments import SLURMEnvironment
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.utilities import rank_zero_only

from medssl.study.config import StudyConfig
from medssl.study.launch import pending_tasks, pretrain_parameters, slurm_arrays
from medssl.train.api import _trainer
from medssl.train.config import PretrainConfig

SLURM_RANK_3_OF_4 = {
    "SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "2", "SLURM_JOB_NUM_NODES": "2",
    "SLURM_NODEID": "1", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "77",
    "SLURM_JOB_NAME": "medssl", "SLURM_NODELIST": "node[1-2]",
}  # fmt: skip  # what SLURM sets in the 4th task of a 2-node job with 2 tasks per node


def test_num_nodes_reaches_the_trainer_and_ranks_come_from_slurm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SLURM_RANK_3_OF_4.items():
        monkeypatch.setenv(name, value)
    # Building the Trainer sets Lightning's process-wide rank (3 here), which silences every later
    # rank_zero_warn in this process (the collapse warning...): put it back after the test.
    monkeypatch.setattr(rank_zero_only, "rank", rank_zero_only.rank)
    config = PretrainConfig(num_nodes=2, devices=2, accelerator="cpu", progress_bar=False)
    trainer = _trainer(config, tmp_path, [], steps_per_epoch=1, epochs=1)
    assert trainer.num_nodes == 2 and trainer.world_size == 4 and isinstance(trainer.strategy, DDPStrategy)
    assert isinstance(trainer.strategy.cluster_environment, SLURMEnvironment)
    assert (trainer.global_rank, trainer.node_rank, trainer.local_rank) == (3, 1, 1)


def test_a_single_process_run_is_not_distributed(tmp_path: Path) -> None:
    trainer = _trainer(
        PretrainConfig(accelerator="cpu", progress_bar=False), tmp_path, [], steps_per_epoch=1, epochs=1
    )
    assert (
        trainer.num_nodes == 1 and trainer.world_size == 1 and not isinstance(trainer.strategy, DDPStrategy)
    )


def test_a_slurm_pretraining_job_asks_for_its_nodes_and_one_task_per_device() -> None:
    study = StudyConfig.model_validate(
        {"datasets": {"x": {"path": "synthetic"}}, "pretrain": {"num_nodes": 2, "devices": 4}}
    )
    assert pretrain_parameters(study) == {"nodes": 2, "ntasks_per_node": 4, "gpus_per_node": 4}
    assert pretrain_parameters(StudyConfig.model_validate({"datasets": {"x": {"path": "synthetic"}}})) == {}


def test_ddp_pretrainings_get_their_own_job_array(tmp_path: Path) -> None:
    base = {
        "datasets": {"x": {"path": "synthetic"}},
        "methods": ["simclr", "vicreg"],
        "baselines": ["random:resnet18"],
    }
    plain = StudyConfig.model_validate(base)
    ((parameters, tasks),) = slurm_arrays(plain, [t for t in pending_tasks(plain, tmp_path) if not t.needs])
    assert parameters["nodes"] == 1 and len(tasks) == 3  # 2 pre-trainings and the baseline's evaluation
    ddp = StudyConfig.model_validate({**base, "pretrain": {"num_nodes": 2, "devices": 4}})
    (first, pretrainings), (second, others) = slurm_arrays(
        ddp, [t for t in pending_tasks(ddp, tmp_path) if not t.needs]
    )
    assert (first["nodes"], first["ntasks_per_node"], first["gpus_per_node"]) == (2, 4, 4)
    assert [t.kind for t in pretrainings] == ["pretrain", "pretrain"]
    assert (second["nodes"], second["ntasks_per_node"], second["gpus_per_node"]) == (1, 1, 1)
    assert [t.name for t in others] == ["x/random-resnet18/evaluate"]
