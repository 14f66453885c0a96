"""``summary.json``: what a finished (or failed, or interrupted) training run records.

Assembled from a ``trainer.TrainingRun`` once its loop has ended: status, fingerprint, the
controlled and algorithm settings, the seed's checklist (rows, tokens, global batch, expected vs
taken optimizer steps), the final training and held-out figures, FLOPs, the machine and the
feature cache.
"""

from __future__ import annotations

import platform
import time

import torch

from specbench import distributed, fairness
from specbench.checkpoint import latest_checkpoint


def positions(metrics: dict, prefix: str) -> list[float]:
    """``prefix/0``, ``prefix/1``, ... of a metrics row, in order."""
    ks = sorted(int(k.rsplit("/", 1)[1]) for k in metrics if k.startswith(prefix + "/"))
    return [metrics[f"{prefix}/{k}"] for k in ks]


def checklist(run, stats: dict) -> dict:
    p, tcfg = run.progress, run.tcfg
    return {
        "dataset_rows": stats["rows"], "dataset_sha256": stats["sha256"],
        "train_rows": run.n_train, "eval_rows": len(run.dataset.eval),
        "tokens_trained": p["tokens"], "loss_tokens_trained": p["loss_tokens"],
        "micro_batch_size": tcfg.micro_batch_size, "grad_accum": run.accum,
        "world_size": run.world, "global_batch": run.global_bs,
        "distributed": run.strategy, "draft_sharded": run.draft_sharded,
        "launcher": distributed.launch().launcher,
        "expected_optimizer_steps": run.total_steps, "optimizer_steps_taken": run.step,
        "steps_match": run.step == run.total_steps,
    }


def train_figures(run) -> dict:
    last, p = run.last_train, run.progress
    return {
        "final_loss": last.get("train/loss"),
        "top1": positions(last, "train/top1"), "top5": positions(last, "train/top5"),
        "tau_sim": last.get("train/tau_sim"),
        "tokens_per_s": p["tokens"] / max(p["train_time_s"], 1e-9),
        "train_time_s": p["train_time_s"], "wall_time_s": time.time() - run.t_start,
        "trainable_params": run.n_params,
        "flops": {"target_forward": p["target_flops"],
                  "draft_forward_backward": p["draft_flops"],
                  "total": p["target_flops"] + p["draft_flops"]},
    }


def build_summary(run) -> dict:
    cfg, ev = run.cfg, run.eval_metrics
    ckpt = latest_checkpoint(run.run_dir)
    stats = run.dataset.stats()
    return {
        "status": run.status, "error": run.error, "algorithm": cfg.algorithm.name,
        "fingerprint": run.fp, "algorithm_config": fairness.algorithm_variables(cfg),
        "algorithm_details": run.model.describe(),
        # what the draft reads from the target (a confound: the report shows it)
        "target_features": {"layers": [int(i) for i in run.spec.layers],
                            "final_hidden": bool(run.spec.final_hidden)},
        "controlled": fairness.controlled_variables(cfg), "dataset": stats,
        "checklist": checklist(run, stats),
        "train": train_figures(run),
        "eval_split": {
            "loss": ev.get("eval/loss"),
            "top1": positions(ev, "eval/top1"), "top5": positions(ev, "eval/top5"),
            "tau_sim": ev.get("eval/tau_sim"),
            # every held-out counter by name (``DraftAlgorithm.calibrate`` reads them)
            "metrics": {k.removeprefix("eval/"): v for k, v in ev.items()},
        },
        "checkpoint": str(ckpt.relative_to(run.run_dir)) if ckpt else None,
        "weights": "draft.safetensors" if run.status == "completed" else None,
        "machine": {"platform": platform.platform(), "device": str(run.device),
                    "torch": torch.__version__, "cpu_threads": torch.get_num_threads()},
        "wandb": run.tracker.wandb_info,
        "feature_cache": run.fcache.info() if run.fcache is not None
        else {"enabled": False, "used": False},
    }
