"""``python -m specbench``: train a draft under the shared trainer (a Hydra app).

    python -m specbench                                  # Medusa on the embedded SmolLM2
    python -m specbench algorithm=medusa model=qwen2.5-7b
    python -m specbench -m algorithm.num_heads=2,3,4,5   # a multirun sweep
    python -m specbench -m +experiment=medusa_vs_eagle3  # a preset sweep (conf/experiment/)

In a multirun, a job that fails is recorded as failed in sweep.json and the sweep goes on; a job
whose run directory already holds a completed run with the same config is skipped unless
force=true (see specbench.sweep).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from specbench import rundir
from specbench.config import register_configs
from specbench.log import get_logger

log = get_logger(__name__)

register_configs()


@hydra.main(version_base="1.3", config_path="pkg://specbench.conf", config_name="config")
def app(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    from specbench import distributed
    from specbench.errors import UserError

    hc = HydraConfig.get()
    multirun = hc.mode is not None and hc.mode.name == "MULTIRUN"
    try:  # main() did it, unless a launcher plugin (submitit) calls this function itself
        distributed.init()
    except UserError as err:
        print(f"\nerror: {err}\n", file=sys.stderr)
        if multirun:
            raise
        sys.exit(2)
    run_dir = distributed_run_dir(Path(hc.runtime.output_dir))
    main_rank = distributed.is_main()
    if not main_rank:
        _no_file_log()

    try:
        if not main_rank:  # rank 0 holds the run directory and writes its files
            return _run(cfg, hc, run_dir, multirun)
        with rundir.hold(run_dir):
            from specbench.log import log_to_file

            rundir.record_hydra(run_dir, cfg, HydraConfig.instance().cfg)
            log_to_file(run_dir / f"{hc.job.name}.log")  # the run log holds the console output
            return _run(cfg, hc, run_dir, multirun)
    except UserError as err:  # RunDirBusy included: then the directory is another's
        if not main_rank:  # a refusal may be this node's alone (a path, a device, its disk)
            print(f"\nerror (rank {distributed.rank()}): {err}\n", file=sys.stderr)
        elif isinstance(err, rundir.RunDirBusy):
            print(f"\nerror: {err}\n", file=sys.stderr)
        else:
            where = ("(its empty run directory was removed)" if rundir.remove_if_unused(run_dir)
                     else f"(run directory {run_dir})")
            print(f"\nerror: {err}\n{where}\n", file=sys.stderr)
        if multirun and not distributed.active():
            raise  # Hydra records the failed job (sweep.json) and runs the next one
        sys.exit(2)  # several processes: the launch ends, so no rank drifts to the next job
    except Exception:
        if multirun and distributed.active():  # as above: one rank's failure ends the launch
            import traceback

            traceback.print_exc()
            sys.exit(1)
        raise


def _no_file_log() -> None:
    """A non-main rank logs nothing into the run's log file (Hydra opened it on every rank)."""
    import logging

    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()


def distributed_run_dir(own: Path) -> Path:
    """Rank 0's run directory, on every rank (Hydra names it from the clock, which ``main``
    made rank 0's everywhere). A rank that resolved another path (another mount of the same
    file system, say) uses rank 0's and removes nothing."""
    from specbench import distributed

    if not distributed.active():
        return own
    chosen = Path(distributed.broadcast(str(own)))
    if chosen != own and not (own.exists() and chosen.exists() and
                              os.path.samefile(own, chosen)):
        log.warning(f"rank {distributed.rank()} resolved the run directory {own}; it uses rank "
                    f"0's, {chosen}")
    return chosen


def preflight(cfg: DictConfig, algorithm_choice: str | None = None) -> None:
    """Refuse, in seconds and without loading a model, every setting that can be checked
    alone: ranges and unknown keys, the algorithm group, export formats, evaluation settings
    (the prompts file included). Raises UserError."""
    from specbench.config import validate
    from specbench.export import check_export_settings
    from specbench.fairness import check_algorithm_choice

    validate(cfg)
    check_algorithm_choice(algorithm_choice)
    check_export_settings(cfg)
    if cfg.decode.enabled:
        from specbench.evaluate import check_eval_settings

        check_eval_settings(cfg.decode)


def _run(cfg: DictConfig, hc, run_dir: Path, multirun: bool):
    """Check everything that can be checked before the first step, then train, export and
    evaluate (inside the training run's tracker). Raises UserError."""
    from omegaconf import OmegaConf

    from specbench.sweep import already_completed, move_aside, objective_value
    from specbench.trainer import train

    preflight(cfg, hc.runtime.choices.get("algorithm"))
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    check_same_config_on_every_rank(resolved)
    if already_completed(run_dir, resolved) and not cfg.force:
        log.info(f"{run_dir} already holds this run, completed: skipped "
                 "(force=true runs it again).")
        from specbench.io import read_json

        return objective_value(cfg, read_json(run_dir / "summary.json"))
    from specbench import distributed

    if cfg.force and distributed.is_main() and (aside := move_aside(run_dir)) is not None:
        log.info(f"force=true: earlier files moved to {aside}")
    distributed.barrier()

    decoded: dict = {}

    trust = bool(cfg.model.trust_remote_code)  # given by this command, not read from a run

    def after_training(tracker) -> None:
        if cfg.export:
            from specbench.export import export_run

            for fmt in cfg.export:  # force: replaces only this run's own earlier export
                log.info(f"exported "
                         f"{export_run(run_dir, fmt, force=True, trust_remote_code=trust)}")
        if cfg.decode.enabled:
            from specbench.config import enum_value
            from specbench.evaluate import evaluate, print_table

            decoded.update(evaluate(run_dir, device=enum_value(cfg.trainer.device),
                                    tracker=tracker, trust_remote_code=trust))
            print_table(decoded)

    summary = train(cfg, run_dir, after=after_training)
    if not distributed.is_main():
        return objective_value(cfg, summary)
    _print_result(run_dir, summary)
    bad = [n for n, m in decoded.get("overall", {}).items() if not m["exact"]]
    if bad and decoded["settings"]["dtype"] == "float32":
        # lossless decoding in fp32 must reproduce greedy exactly: a mismatch is a bug
        msg = (f"lossless decoding differed from greedy decoding in fp32 for {bad} (see "
               f"{run_dir}/eval.json, per_prompt): a decoder bug, please report it.")
        if multirun:
            raise RuntimeError(msg)
        print(f"\nerror: {msg}\n", file=sys.stderr)
        sys.exit(1)
    return objective_value(cfg, summary)  # what a sweeper (Optuna) optimises: cfg.objective


def check_same_config_on_every_rank(resolved: dict) -> None:
    """Every rank of a launch must train the same config (DDP would not notice another
    learning rate on one rank): compare hashes, refuse naming the ranks that differ."""
    from specbench import distributed
    from specbench.errors import UserError
    from specbench.io import stable_hash

    if not distributed.active():
        return
    hashes = distributed.all_gather(stable_hash(resolved))
    odd = [r for r, h in enumerate(hashes) if h != hashes[0]]
    if odd:
        raise UserError(f"Ranks {odd} composed a different config from rank 0's. Every "
                        "process of a launch must get the same overrides and environment "
                        "(${oc.env:...} values included); a sampling sweeper (Optuna, "
                        "+hparams_search=...) cannot drive a multi-process launch: run its "
                        "trials with hydra/launcher=slurm instead.")


def _print_result(run_dir: Path, summary: dict) -> None:
    t, e, c = summary["train"], summary["eval_split"], summary["checklist"]
    fmt = lambda xs: " ".join(f"{x:.3f}" for x in xs) if xs else "-"  # noqa: E731
    loss = e["loss"] if e["loss"] is None else round(e["loss"], 4)
    files = f"{summary['checkpoint']}" + (", eval.json" if (run_dir / "eval.json").is_file()
                                          else "")
    log.info("\n".join([
        f"\n[specbench] {summary['algorithm']} run {summary['status']} "
        f"(fingerprint {summary['fingerprint']})",
        f"  steps {c['optimizer_steps_taken']}/{c['expected_optimizer_steps']}, "
        f"{c['tokens_trained']} tokens, {t['tokens_per_s']:.0f} tokens/s, "
        f"{t['train_time_s']:.0f} s training",
        f"  held-out split: loss {loss}, top-1 per position {fmt(e['top1'])}, "
        f"tau_sim {e['tau_sim'] or 0:.3f}",
        f"  results: {run_dir}/summary.json, metrics.jsonl, draft.safetensors, {files}"]))


def main() -> None:
    from specbench.host_memory import keep_freed_memory

    keep_freed_memory()  # opt-in (SPECBENCH_KEEP_FREED_MEMORY=1), before torch allocates
    from specbench.config import plain_group_overrides
    from specbench.errors import UserError
    from specbench.sweep import check_callback_overrides

    sys.argv[1:] = plain_group_overrides(sys.argv[1:])  # +experiment=X, eval.X: see there
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        _print_help([a for a in sys.argv[1:] if a not in ("--help", "-h")])
    try:  # before Hydra instantiates any callback named on the command line
        check_callback_overrides(sys.argv[1:])
        _check_output_dirs(sys.argv[1:])
        from specbench import distributed

        distributed.init()  # several processes: one process group, or a clear refusal
    except UserError as err:
        print(f"\nerror: {err}\n", file=sys.stderr)
        sys.exit(2)
    distributed.freeze_hydra_clock()  # every rank names the same run directory
    app()


def _check_output_dirs(args: list[str]) -> None:
    """Hydra creates ``hydra.run.dir``/``hydra.sweep.dir`` before the app runs: one that is a
    file would end in Hydra's traceback, so refuse it here."""
    from specbench.errors import UserError

    for a in args:
        key, _, value = a.lstrip("+").partition("=")
        if key in ("hydra.run.dir", "hydra.sweep.dir") and value:
            p = Path(value)
            if any(q.is_file() for q in (p, *p.parents)):
                raise UserError(f"{key}={value} is (or lies under) an existing file, not a "
                                f"directory. Choose another {key}.")


def _print_help(args: list[str]) -> None:
    """``--help``: specbench's own page (config.help_text), with this command's overrides."""
    from specbench.config import help_text

    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    try:
        text = help_text(overrides)
    except Exception as err:  # noqa: BLE001 - a bad override: the page without it
        text = help_text([]) + f"(the overrides {' '.join(overrides)} do not compose: {err})\n"
    print(text, end="")
    sys.exit(0)


if __name__ == "__main__":
    main()
