"""Run a study's cells in parallel through submitit: ``local`` (N worker processes on this machine, one per
GPU or per group of CPU cores) or ``slurm`` (one job per cell, job arrays where they fit).

The unit of work is a *task*: one encoder's pre-training, or all pending evaluation cells of one encoder on
one dataset, in one fold under cross-validation (they share the loaded data and encoder). A task waits for the tasks its cells need. Every task
writes what it finishes at once (encoder.json, results.csv rows under their lock), so a rerun or a
resubmission skips it, and a killed task resumes from its last checkpoint. Each task's output goes to
``RUN_DIR/_logs/<job id>_0_log.{out,err}`` (submitit's names), which ``medssl status`` shows for a failure.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import submitit
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from submitit.helpers import Checkpointable
from submitit.slurm.slurm import _make_sbatch_string
from threadpoolctl import threadpool_limits

from medssl.common.lightning import quiet_lightning_logs
from medssl.data.dataset import prepare_data
from medssl.errors import Interrupted, MedsslError
from medssl.rundir.lock import run_lock
from medssl.rundir.settings import data_settings
from medssl.study.cells import done_cells, study_cells
from medssl.study.config import SlurmSettings, StudyConfig
from medssl.study.grid import EncoderJob, StudyRunner
from medssl.study.state import cell_folder
from medssl.train.api import world_size

LOG_DIR = "_logs"
LOCAL_TIMEOUT_MIN = 7 * 24 * 60
"""A local task has no time limit in practice (submitit's local default is 2 minutes)."""
CORES_PER_CPU_WORKER = 4
POLL_S = 0.5


@dataclass(frozen=True)
class Task:
    """One job: ``kind`` pretrain (one encoder) or evaluate (its pending cells), in cross-validation
    ``fold`` (None for a single split); ``needs`` names the pre-training cells that must be done first."""

    name: str
    kind: str
    dataset: str
    job: EncoderJob
    needs: tuple[str, ...] = ()
    fold: int | None = None


def pending_tasks(study: StudyConfig, out: str | Path, fresh: bool = False) -> list[Task]:
    """The tasks of the cells not yet done in ``out`` (all of them when ``fresh``), pre-trainings first."""
    cells = study_cells(study)
    done = set() if fresh else done_cells(cells, out)
    tasks: dict[str, Task] = {}
    for cell in cells:
        if cell.name in done:
            continue
        if cell.kind == "pretrain":
            tasks[cell.name] = Task(cell.name, "pretrain", cell.dataset, cell.job, fold=cell.fold)
            continue
        name = f"{cell_folder(cell.dataset, cell.fold)}/{cell.job.encoder_id}/evaluate"
        needs = tuple(need for need in cell.needs if need not in done)
        tasks.setdefault(name, Task(name, "evaluate", cell.dataset, cell.job, needs, cell.fold))
    return sorted(tasks.values(), key=lambda task: task.kind != "pretrain")


def _log_path() -> str | None:
    try:
        return str(submitit.JobEnvironment().paths.stderr)
    except RuntimeError:  # not inside a submitit job
        return None


class TaskRunner(Checkpointable):
    """Runs one task in a worker; on a SLURM timeout or preemption submitit requeues it with the same
    arguments, and the pre-training resumes from its last checkpoint."""

    def __call__(self, study: StudyConfig, out: str, task: Task, threads: int) -> str:
        torch.set_num_threads(threads)
        runner = StudyRunner(study, out, show_progress=False)
        runner.log = _log_path()
        data_config = study.datasets[task.dataset].model_copy(update={"name": task.dataset})
        with run_lock(out, shared=True), threadpool_limits(threads), quiet_lightning_logs():
            data = prepare_data(data_config, run_dir=runner.out / task.dataset, fold=task.fold)
            encoder = runner.encoder(task.job, data, lambda _: None)
            if task.kind == "evaluate":
                keyed = data_settings(data_config.model_dump(mode="json"))
                runner.evaluate(data, task.job, encoder, keyed, lambda _: None)
        return task.name


def prepare_run(study: StudyConfig, out: str | Path, command: str | None) -> StudyRunner:
    """What the sequential run does before its first cell (``StudyRunner.started``): the checks, then
    config.yaml, each dataset decoded into its cache and split once, every fold under cross-validation (so
    workers only read them: the same split.csv as the sequential run), and the augmentation previews."""
    runner = StudyRunner(study, out, command, show_progress=False)
    with runner.started():
        return runner


@dataclass(frozen=True)
class Slot:
    """Where one local worker runs: its GPU (None on CPU) and its CPU threads."""

    gpu: int | None
    threads: int


def local_slots(workers: int | None, threads: int | None) -> list[Slot]:
    """One slot per GPU (or ``workers`` of them, sharing the GPUs in turn); without a GPU, one per
    ``CORES_PER_CPU_WORKER`` cores; the CPU cores are shared out evenly unless ``threads`` is given."""
    gpus, cores = torch.cuda.device_count(), os.cpu_count() or 1
    count = workers or gpus or max(1, cores // CORES_PER_CPU_WORKER)
    per_worker = threads or max(1, cores // count)
    return [Slot(index % gpus if gpus else None, per_worker) for index in range(count)]


def _submit_local(executor: submitit.LocalExecutor, study: StudyConfig, out: Path, task: Task, slot: Slot):
    gpus = {} if slot.gpu is None else {"visible_gpus": [slot.gpu]}
    executor.update_parameters(gpus_per_node=0 if slot.gpu is None else 1, **gpus)
    return executor.submit(TaskRunner(), study, str(out), task, slot.threads)


def _progress() -> Progress:
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    return Progress(*columns)


def run_local(
    study: StudyConfig, out: str | Path, tasks: list[Task], slots: list[Slot], show_progress: bool = True
) -> dict[str, str]:
    """Run ``tasks`` with one submitit local job per task, ``len(slots)`` at once, each after the tasks it
    needs; returns the failed tasks with their logs (a task whose need failed is not started)."""
    out = Path(out)
    executor = submitit.LocalExecutor(folder=out / LOG_DIR)
    executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
    waiting, running, free = list(tasks), {}, list(slots)
    finished, failed = set(), {}
    with _progress() as progress:
        bar = progress.add_task(f"tasks ({len(slots)} workers)", total=len(tasks), visible=show_progress)
        try:
            while waiting or running:
                for task in list(waiting):
                    if any(need in failed for need in task.needs):
                        waiting.remove(task)
                        failed[task.name] = f"not started: {', '.join(task.needs)} failed"
                    elif free and all(need in finished for need in task.needs):
                        waiting.remove(task)
                        slot = free.pop(0)
                        running[task.name] = (_submit_local(executor, study, out, task, slot), slot)
                time.sleep(POLL_S)
                for name, (job, slot) in list(running.items()):
                    if job.done():
                        del running[name]
                        free.append(slot)
                        progress.advance(bar)
                        if job.paths.result_pickle.exists() and job.exception() is None:
                            finished.add(name)
                        else:
                            failed[name] = f"log: {job.paths.stderr}"
        except KeyboardInterrupt:
            for job, _ in running.values():
                job.cancel()
            raise Interrupted(
                "every finished cell and the last completed pre-training epoch are kept; rerun the same "
                "`medssl benchmark` command to continue"
            ) from None
    return failed


def slurm_parameters(settings: SlurmSettings) -> dict:
    """``settings`` as submitit SlurmExecutor parameters (sbatch options)."""
    parameters = {
        "job_name": "medssl", "partition": settings.partition, "account": settings.account,
        "time": settings.time_min, "gpus_per_node": settings.gpus_per_cell,
        "cpus_per_task": settings.cpus_per_cell, "mem": f"{settings.mem_gb}GB",
        "array_parallelism": settings.array_parallelism, "setup": settings.setup,
    }  # fmt: skip
    return {key: value for key, value in parameters.items() if value is not None}


def pretrain_parameters(study: StudyConfig) -> dict:
    """The sbatch options of a multi-GPU or multi-node pre-training job: ``num_nodes`` nodes, one task per
    device on each (Lightning takes the DDP ranks from SLURM); empty for a one-process pre-training."""
    config = study.pretrain
    if world_size(config) == 1:
        return {}
    return {"nodes": config.num_nodes, "ntasks_per_node": config.devices, "gpus_per_node": config.devices}


def sbatch_script(settings: SlurmSettings, folder: str | Path, array: int | None = None) -> str:
    """The sbatch script submitit writes for a job (an array of ``array`` jobs) with ``settings``."""
    command = f"{sys.executable} -u -m submitit.core._submit {folder}"  # what submitit runs in each job
    return _make_sbatch_string(command=command, folder=folder, map_count=array, **slurm_parameters(settings))


def slurm_plan(study: StudyConfig, out: str | Path, fresh: bool = False) -> str:
    """What ``launcher: slurm`` would submit into ``out`` (a fresh one with ``fresh``): the job counts and the
    array's sbatch script."""
    tasks = pending_tasks(study, out, fresh)
    ready = sum(not task.needs for task in tasks)
    script = sbatch_script(study.slurm, Path(out) / LOG_DIR, array=ready) if ready else ""
    return (
        f"SLURM: an array of {ready} jobs, then {len(tasks) - ready} jobs each after the pre-training it needs"
        f" (afterok). The array's sbatch script:\n{script}"
    )


def slurm_arrays(study: StudyConfig, ready: list[Task]) -> list[tuple[dict, list[Task]]]:
    """The job arrays of the ``ready`` tasks, with their sbatch options: one array, or with DDP pre-trainings
    (more nodes and tasks than an evaluation needs) one array of those and one of the rest."""
    single = {**slurm_parameters(study.slurm), "nodes": 1, "ntasks_per_node": 1}
    distributed = pretrain_parameters(study)
    if not distributed:
        groups = [(single, ready)]
    else:
        pretrainings = [task for task in ready if task.kind == "pretrain"]
        others = [task for task in ready if task.kind != "pretrain"]
        groups = [({**single, **distributed}, pretrainings), (single, others)]
    return [(parameters, group) for parameters, group in groups if group]


def submit_tasks(study: StudyConfig, out: str | Path, tasks: list[Task], executor: submitit.Executor) -> dict:
    """Submit every task to ``executor``: the tasks that need nothing pending as one job array, then each
    other task with a SLURM ``afterok`` dependency on the jobs it needs (an executor without dependencies,
    such as submitit's local one, waits for them first). Returns task name → submitit job."""
    threads = study.slurm.cpus_per_cell
    slurm = isinstance(executor, submitit.SlurmExecutor)
    jobs = {}
    for parameters, group in slurm_arrays(study, [task for task in tasks if not task.needs]):
        if slurm:
            executor.update_parameters(**parameters)
        with executor.batch():
            array = [executor.submit(TaskRunner(), study, str(out), task, threads) for task in group]
        jobs.update({task.name: job for task, job in zip(group, array, strict=True)})
    if slurm:
        executor.update_parameters(**slurm_parameters(study.slurm), nodes=1, ntasks_per_node=1)
    for task in tasks:
        if not task.needs:
            continue
        needed = [jobs[need] for need in task.needs]
        if slurm:
            dependency = "afterok:" + ":".join(job.job_id for job in needed)
            executor.update_parameters(additional_parameters={"dependency": dependency})
        else:
            for job in needed:
                job.wait()
        jobs[task.name] = executor.submit(TaskRunner(), study, str(out), task, threads)
    return jobs


def launch_study(
    study: StudyConfig,
    out: str | Path,
    command: str | None = None,
    show_progress: bool = True,
    restart: bool = False,
    say=None,
) -> dict:
    """Run ``study`` with its launcher (``local`` or ``slurm``). ``local`` returns when every task is done and
    the report written; ``slurm`` returns the submitted jobs (task name → job) at once. ``restart`` and
    ``say`` as in ``run_study``. The run lock of ``out`` is shared with the workers while they run."""
    runner = StudyRunner(study, out, command, show_progress=False, restart=restart, say=say)
    with runner.started() as (lock, _):
        lock.share()  # the workers (and SLURM tasks) join it, shared; another `medssl benchmark` is refused
        tasks = pending_tasks(study, runner.out)
        if study.launcher == "slurm":
            executor = submitit.SlurmExecutor(folder=runner.out / LOG_DIR, max_num_timeout=3)
            executor.update_parameters(**slurm_parameters(study.slurm))
            return submit_tasks(study, runner.out, tasks, executor)
        failed = run_local(
            study, runner.out, tasks, local_slots(study.workers, study.threads_per_worker), show_progress
        )
        if failed:
            listed = "; ".join(f"{name} ({why})" for name, why in failed.items())
            raise MedsslError(
                f"{len(failed)} of {len(tasks)} tasks failed: {listed}. Every finished cell is kept; rerun the "
                f"same command to retry them (a pre-training resumes from its last checkpoint); "
                f"`medssl status {runner.out}` lists the cells"
            )
        from medssl.report.api import write_report

        write_report(runner.out)
    return {}
