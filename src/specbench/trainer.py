"""The shared trainer: the controlled part of every run, identical for every algorithm.

One training step: the frozen target runs on a micro batch and returns the features the
algorithm asked for; the draft computes its loss on them; gradients accumulate over
``grad_accum`` micro batches (x world size), are clipped, and AdamW steps with linear warmup then
cosine decay to 0. Data order depends only on (seed, epoch), so an interrupted run resumed from
its last checkpoint ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import platform
import shutil
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from specbench import fairness, rundir
from specbench.algorithms import get_algorithm
from specbench.algorithms.base import tau_sim
from specbench.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    publish_weights,
    save_checkpoint,
    set_rng_state,
    write_json,
)
from specbench.config import enum_value, validate
from specbench.data import build_dataset, collate, epoch_order
from specbench.errors import UserError
from specbench.feature_cache import human_size as _size
from specbench.target import forward_flops_per_token, load_target
from specbench.tracking import RunTracker


class CounterBank:
    """Sums (numerator, denominator) counters over batches; ratios on demand."""

    def __init__(self):
        self.num: dict[str, float] = {}
        self.den: dict[str, float] = {}

    def add(self, counters: dict) -> None:
        for k, (n, d) in counters.items():
            self.num[k] = self.num.get(k, 0.0) + float(n)
            self.den[k] = self.den.get(k, 0.0) + float(d)

    def ratios(self) -> dict[str, float]:
        return {k: self.num[k] / self.den[k] for k in self.num if self.den[k] > 0}

    def report(self, prefix: str = "") -> dict[str, float]:
        out = {f"{prefix}{k}": v for k, v in self.ratios().items()}
        top1 = _positions(self.ratios(), "top1")
        if top1:
            out[f"{prefix}tau_sim"] = tau_sim(top1)
        return out


class _LossForward(torch.nn.Module):
    def __init__(self, algorithm: torch.nn.Module):
        super().__init__()
        self.algorithm = algorithm

    def forward(self, features, batch):
        return self.algorithm.loss(features, batch)


def make_optimizer(params, tcfg) -> torch.optim.AdamW:
    """AdamW with the fused (single-kernel) implementation where PyTorch has one."""
    kwargs = dict(lr=tcfg.lr, betas=(tcfg.adam_beta1, tcfg.adam_beta2), eps=tcfg.adam_eps,
                  weight_decay=tcfg.weight_decay)
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(params, **kwargs)


def to_fp32_params(module: torch.nn.Module, device) -> torch.nn.Module:
    """Move a draft to ``device`` with fp32 master parameters; frozen buffers borrowed from the
    target (lm_head, embedding) keep the target's dtype instead of becoming fp32 copies."""
    module.to(device)
    for p in module.parameters():
        p.data = p.data.float()
    return module


def lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return f


def _make_accelerator(trainer_cfg):
    from accelerate import Accelerator

    device = enum_value(trainer_cfg.device)
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("trainer.device=cuda but no CUDA device is visible; use trainer.device="
                        "auto or cpu.")
    return Accelerator(mixed_precision=enum_value(trainer_cfg.precision), cpu=device == "cpu")


def _run_eval(draft, target, spec, rows, micro, pad_id, device, accelerator,
              autocast: bool, cache=None) -> dict:
    bank, loss_sum, n = CounterBank(), 0.0, 0
    draft.eval()
    with torch.no_grad():
        for i in range(0, len(rows), micro):
            batch = {k: v.to(device) for k, v in collate(rows[i: i + micro], pad_id).items()}
            if cache is not None:  # the held-out rows i.. of the feature cache's eval split
                feats = cache.features("eval", list(range(i, min(i + micro, len(rows)))),
                                       batch["input_ids"].shape[1], spec, device)
            else:
                feats = target.features(batch["input_ids"], batch["attention_mask"], spec)
            if not autocast:
                feats = feats.to(torch.float32)
            with accelerator.autocast():
                loss, counters = draft.loss(feats, batch)
            bank.add(counters)
            loss_sum += float(loss)
            n += 1
    draft.train()
    return {"eval/loss": loss_sum / max(1, n), **bank.report("eval/")}


class TrainingDiverged(UserError):
    """The loss or the gradient norm stopped being finite: the run stops, marked failed."""


def train(cfg: DictConfig, run_dir: Path, stop_after_steps: int | None = None,
          after=None) -> dict:
    """Train the draft ``cfg.algorithm`` describes; write checkpoints, metrics and summary.

    ``after(tracker)``, if given, runs once the run has completed and before its tracker
    finishes (``python -m specbench`` evaluates there, so one W&B run holds both).

    ``stop_after_steps`` simulates an interruption (tests): stop after that many optimizer
    steps, with a checkpoint, as if the process had been killed right after saving it.

    The run directory is locked for the whole call (``specbench.rundir``). Resuming a run whose
    training finished (killed while publishing its weights or during ``after``) trains nothing:
    it publishes the final checkpoint's weights, writes the summary and runs ``after``.
    """
    run_dir = Path(run_dir)
    with rundir.hold(run_dir):
        return _train(cfg, run_dir, stop_after_steps, after)


def _train(cfg: DictConfig, run_dir: Path, stop_after_steps: int | None, after) -> dict:
    """The body of ``train`` (a long function: setup, resume, loop and summary are one
    sequence sharing their state; the restructure into named phases is issue 9)."""
    t_start = time.time()
    tcfg = cfg.trainer
    validate(cfg)  # ranges and unknown keys (python -m specbench has checked them already)
    algo_cls = get_algorithm(cfg.algorithm.name)
    previous = latest_checkpoint(run_dir)
    if previous is not None and not tcfg.resume:
        raise UserError(f"{run_dir} already holds checkpoints ({previous.name}). To continue "
                        "or finish that run (training, then evaluation and export), run: "
                        f"{rundir.resume_command(run_dir)}  -- or choose a new run directory "
                        "(hydra.run.dir=...); existing checkpoints are never overwritten.")
    if tcfg.resume and previous is None:
        raise UserError(f"trainer.resume=true but {run_dir} has no checkpoint to resume from. "
                        "Pass the old run directory with hydra.run.dir=<run_dir>, or drop "
                        "trainer.resume.")

    accelerator = _make_accelerator(tcfg)
    device, world, rank = accelerator.device, accelerator.num_processes, accelerator.process_index
    torch.manual_seed(tcfg.seed)
    target = load_target(cfg.model, seed=tcfg.seed, device=device)
    if cfg.eval.enabled:  # decoding settings the target's vocabulary cannot serve
        from specbench.evaluate import check_decode_against_target

        check_decode_against_target(cfg, target.config.vocab_size)
    dataset = build_dataset(cfg.data, target.tokenizer, tcfg.max_length,
                            verbose=accelerator.is_main_process,
                            progress=tcfg.progress and accelerator.is_main_process)
    accum = fairness.resolve_grad_accum(tcfg, world)
    global_bs = fairness.global_batch(tcfg.micro_batch_size, accum, world)
    fp = fairness.fingerprint(cfg, dataset.conversations.sha256, world_size=world)
    if accelerator.is_main_process:
        print(fairness.parameter_tables(cfg, fp))
        print(f"[specbench] fingerprint {fp}  run dir {run_dir}")
    spec = algo_cls.feature_spec(cfg.algorithm, target.config)
    fcache = None
    if cfg.cache.enabled:  # offline mode: see feature_cache.py
        from specbench.feature_cache import prepare

        fcache = prepare(cfg, target, dataset, spec, verbose=accelerator.is_main_process)
    n_train = len(dataset.train)
    steps_per_epoch = math.ceil(n_train / global_bs)
    total_steps = fairness.expected_steps(n_train, global_bs, tcfg.epochs, tcfg.max_steps)
    warmup = math.ceil(tcfg.warmup_ratio * total_steps)

    torch.manual_seed(tcfg.seed)
    draft = to_fp32_params(algo_cls.build(cfg.algorithm, target, dataset), device)
    params = [p for p in draft.parameters() if p.requires_grad]
    if not params:
        raise UserError(f"algorithm={cfg.algorithm.name} with these settings has no trainable "
                        "parameters; change the algorithm settings (e.g. algorithm.num_layers).")
    n_params = sum(p.numel() for p in params)
    # A checkpoint holds the weights and AdamW's two moments (fp32): keep + 1 of them at once.
    need = 3 * 4 * sum(t.numel() for t in draft.state_dict().values()) \
        * (tcfg.keep_checkpoints + 1)
    free = shutil.disk_usage(run_dir).free
    if free < need:
        raise UserError(f"Not enough disk for checkpoints in {run_dir}: about {_size(need)} "
                        f"needed, {_size(free)} free. Free space, lower "
                        "trainer.keep_checkpoints, or choose another hydra.run.dir.")
    optimizer = make_optimizer(params, tcfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(warmup, total_steps))
    model = draft
    autocast = enum_value(tcfg.precision) != "no"
    # The loss goes through forward() so that a distributed wrapper (DDP) syncs gradients.
    draft, optimizer = accelerator.prepare(_LossForward(model), optimizer)

    if accelerator.is_main_process and hasattr(model, "serving_config"):
        write_json(run_dir / "draft_config.json", model.serving_config())

    progress = {"epoch": 0, "step_in_epoch": 0, "tokens": 0, "loss_tokens": 0,
                "train_time_s": 0.0, "draft_flops": 0.0, "target_flops": 0.0, "fingerprint": fp,
                "algorithm": cfg.algorithm.name,
                "algorithm_config": fairness.algorithm_variables(cfg)}
    step = 0
    finishing = False  # resumed after the last step: nothing left to train
    if tcfg.resume:
        weights, state, saved = load_checkpoint(previous)
        if saved.get("fingerprint") != fp:
            raise UserError(f"Cannot resume {run_dir}: its fingerprint {saved.get('fingerprint')}"
                            f" differs from this config's {fp}, so the controlled settings "
                            "changed. Resume with the original settings, or start a new run.")
        if saved.get("algorithm_config") != progress["algorithm_config"]:
            theirs, ours = saved.get("algorithm_config") or {}, progress["algorithm_config"]
            diff = [f"algorithm.{k}: checkpoint {theirs.get(k)!r}, now {ours.get(k)!r}"
                    for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
            raise UserError(f"Cannot resume {run_dir} with different algorithm settings ("
                            + "; ".join(diff) + "). Pass the original algorithm settings.")
        finishing = saved.get("step") == total_steps
        model.load_trainable_state_dict(weights)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        step = saved.pop("step")
        progress.update(saved)
        print(f"[specbench] resumed from {previous} at step {step}"
              + (": training is complete, finishing the run" if finishing else ""))

    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    tracker = RunTracker(run_dir, cfg.tracker, resolved, fp, cfg.algorithm.name,
                         resume_id=progress.get("wandb_id"), resume_step=step,
                         enabled=accelerator.is_main_process)
    progress["wandb_id"] = tracker.wandb_info.get("run_id")
    pad_id = target.tokenizer.pad_token_id
    status, error = "running", None
    window, window_loss, window_steps = CounterBank(), 0.0, 0
    if "log_window" in progress:  # the metrics window open at the checkpoint (resume)
        saved_window = progress.pop("log_window")
        window.num, window.den = saved_window["num"], saved_window["den"]
        window_loss, window_steps = saved_window["loss"], saved_window["steps"]
    last_train: dict = tracker.last_row("train/loss") if finishing else {}
    eval_metrics: dict = {}

    def checkpoint() -> Path:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            state = {**progress, "log_window": {"num": window.num, "den": window.den,
                                                "loss": window_loss, "steps": window_steps}}
            try:
                save_checkpoint(run_dir, step, model.trainable_state_dict(), optimizer,
                                scheduler, state, keep=tcfg.keep_checkpoints)
            except OSError as err:
                if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise UserError(f"The disk filled up while writing the checkpoint of step {step}"
                                f" in {run_dir}/checkpoints ({_size(shutil.disk_usage(run_dir).free)}"
                                f" free; a checkpoint takes about {_size(need / (tcfg.keep_checkpoints + 1))})."
                                " The partial checkpoint was removed and earlier ones are intact."
                                " Free space, then continue with: "
                                f"{rundir.resume_command(run_dir)}") from None
        accelerator.wait_for_everyone()
        return run_dir / "checkpoints" / f"step-{step:07d}"

    try:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=step, desc=f"train {cfg.algorithm.name}",
                   disable=not (tcfg.progress and accelerator.is_main_process))
        t_window, tok_window = time.time(), 0
        draft.train()
        if (not finishing and accelerator.is_main_process
                and os.environ.get("SPECBENCH_COMPILE", "1") != "0"):
            print("[specbench] the first steps compile the fused loss kernels (torch.compile): "
                  "they take longer than the rest (SPECBENCH_COMPILE=0 skips compiling)")
        for epoch in range(progress["epoch"], tcfg.epochs if not finishing else 0):
            order = epoch_order(n_train, tcfg.seed, epoch)
            micro = [order[i: i + tcfg.micro_batch_size]
                     for i in range(0, n_train, tcfg.micro_batch_size)]
            groups = [micro[i: i + accum * world] for i in range(0, len(micro), accum * world)]
            for s in range(progress["step_in_epoch"], steps_per_epoch):
                if step >= total_steps:
                    break
                t_step = time.time()
                group = groups[s]
                mine = group[rank::world]
                # Every rank runs the same number of passes (DDP needs it): short ranks repeat a
                # batch with weight 0. DDP averages over ranks, hence world / len(group).
                slots = mine + [None] * (math.ceil(len(group) / world) - len(mine))
                step_loss, counts = 0.0, torch.zeros(5, dtype=torch.float64)
                for j, idx in enumerate(slots):
                    real = idx is not None
                    rows = idx if real else group[0]
                    batch = collate([dataset.train[i] for i in rows], pad_id)
                    batch = {k: v.to(device) for k, v in batch.items()}
                    if fcache is not None:
                        feats = fcache.features("train", rows, batch["input_ids"].shape[1],
                                                spec, device)
                    else:
                        feats = target.features(batch["input_ids"], batch["attention_mask"],
                                                spec)
                    if not autocast:
                        feats = feats.to(torch.float32)
                    last = j == len(slots) - 1
                    with (contextlib.nullcontext() if last or world == 1
                          else accelerator.no_sync(draft)):
                        with accelerator.autocast():
                            loss, counters = draft(feats, batch)
                        accelerator.backward(loss * (world / len(group) if real else 0.0))
                    if not real:
                        continue
                    loss_value = float(loss.detach())
                    step_loss += loss_value / len(mine)
                    window.add(counters)
                    ntok = int(batch["attention_mask"].sum())
                    counts += torch.tensor([
                        ntok, int(batch["loss_mask"].sum()), float(counters["draft_flops"][0]),
                        ntok * forward_flops_per_token(target.config,
                                                       batch["input_ids"].shape[1] / 2),
                        0.0 if math.isfinite(loss_value) else 1.0], dtype=torch.float64)
                if world > 1:
                    counts = accelerator.reduce(counts.to(device), "sum").cpu()
                ntok, nloss, dflops, tflops, nonfinite = counts.tolist()
                progress["tokens"] += int(ntok)
                progress["loss_tokens"] += int(nloss)
                progress["draft_flops"] += dflops
                progress["target_flops"] += tflops
                tok_window += int(ntok)
                grad_norm = accelerator.clip_grad_norm_(params, tcfg.max_grad_norm)
                if nonfinite or not math.isfinite(float(grad_norm)):
                    raise TrainingDiverged(
                        f"Training stopped at optimizer step {step + 1}: the "
                        f"{'loss' if nonfinite else 'gradient norm'} is not finite (loss "
                        f"{step_loss:.4g}, gradient norm {float(grad_norm):.4g}). The weights of "
                        "this step were not applied and the run is marked failed. Corrupt "
                        "input features (a damaged feature cache: delete it, or "
                        "cache.enabled=false) or a learning rate too high for this precision "
                        "(lower trainer.lr, or trainer.precision=no) are the usual causes.")
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                progress["step_in_epoch"] = s + 1
                progress["train_time_s"] += time.time() - t_step
                window_loss += step_loss
                window_steps += 1
                if step % tcfg.log_every == 0 or step == total_steps:
                    elapsed = time.time() - t_window
                    last_train = {"train/loss": window_loss / window_steps,
                                  "train/lr": scheduler.get_last_lr()[0],
                                  "train/grad_norm": float(grad_norm),
                                  "train/tokens_per_s": tok_window / max(elapsed, 1e-9),
                                  "train/epoch": epoch, **window.report("train/")}
                    tracker.log(last_train, step)
                    bar.set_postfix(loss=f"{last_train['train/loss']:.3f}",
                                    acc0=f"{last_train.get('train/top1/0', 0):.3f}",
                                    tok_s=f"{last_train['train/tokens_per_s']:.0f}")
                    window, window_loss, window_steps = CounterBank(), 0.0, 0
                    t_window, tok_window = time.time(), 0
                bar.update(1)
                if dataset.eval and (step % tcfg.eval_every == 0 or step == total_steps):
                    eval_metrics = _run_eval(model, target, spec, dataset.eval,
                                             tcfg.micro_batch_size, pad_id, device, accelerator,
                                             autocast, cache=fcache)
                    tracker.log(eval_metrics, step)
                stopping = stop_after_steps is not None and step >= stop_after_steps
                if stopping or (tcfg.checkpoint_every and step % tcfg.checkpoint_every == 0
                                and step != total_steps):
                    checkpoint()
                if stopping:
                    status = "interrupted"
                    break
            if status == "interrupted":
                break
            if step >= total_steps and progress["step_in_epoch"] < steps_per_epoch:
                break
            progress["epoch"] = epoch + 1
            progress["step_in_epoch"] = 0
        bar.close()
        if finishing:
            final = previous
            if dataset.eval:
                eval_metrics = _run_eval(model, target, spec, dataset.eval,
                                         tcfg.micro_batch_size, pad_id, device, accelerator,
                                         autocast, cache=fcache)
            if accelerator.is_main_process:
                publish_weights(final, run_dir / "draft.safetensors")
            status = "completed"
        elif status != "interrupted":
            final = checkpoint()
            if accelerator.is_main_process:
                publish_weights(final, run_dir / "draft.safetensors")
            status = "completed"
    except BaseException as err:
        status, error = "failed", f"{type(err).__name__}: {err}"
        raise
    finally:
        wall = time.time() - t_start
        stats = dataset.stats()
        checklist = {
            "dataset_rows": stats["rows"], "dataset_sha256": stats["sha256"],
            "train_rows": n_train, "eval_rows": len(dataset.eval),
            "tokens_trained": progress["tokens"], "loss_tokens_trained": progress["loss_tokens"],
            "micro_batch_size": tcfg.micro_batch_size, "grad_accum": accum,
            "world_size": world, "global_batch": global_bs,
            "expected_optimizer_steps": total_steps, "optimizer_steps_taken": step,
            "steps_match": step == total_steps,
        }
        summary = {
            "status": status, "error": error, "algorithm": cfg.algorithm.name,
            "fingerprint": fp, "algorithm_config": fairness.algorithm_variables(cfg),
            "algorithm_details": model.describe() if hasattr(model, "describe") else {},
            "controlled": fairness.controlled_variables(cfg), "dataset": stats,
            "checklist": checklist,
            "train": {
                "final_loss": last_train.get("train/loss"),
                "top1": _positions(last_train, "train/top1"),
                "top5": _positions(last_train, "train/top5"),
                "tau_sim": last_train.get("train/tau_sim"),
                "tokens_per_s": progress["tokens"] / max(progress["train_time_s"], 1e-9),
                "train_time_s": progress["train_time_s"], "wall_time_s": wall,
                "trainable_params": n_params,
                "flops": {"target_forward": progress["target_flops"],
                          "draft_forward_backward": progress["draft_flops"],
                          "total": progress["target_flops"] + progress["draft_flops"]},
            },
            "eval_split": {
                "loss": eval_metrics.get("eval/loss"),
                "top1": _positions(eval_metrics, "eval/top1"),
                "top5": _positions(eval_metrics, "eval/top5"),
                "tau_sim": eval_metrics.get("eval/tau_sim"),
            },
            "checkpoint": str(ckpt.relative_to(run_dir))
            if (ckpt := latest_checkpoint(run_dir)) else None,
            "weights": "draft.safetensors" if status == "completed" else None,
            "machine": {"platform": platform.platform(), "device": str(device),
                        "torch": torch.__version__, "cpu_threads": torch.get_num_threads()},
            "wandb": tracker.wandb_info,
            "feature_cache": fcache.info() if fcache is not None
            else {"enabled": False, "used": False},
        }
        if accelerator.is_main_process:
            write_json(run_dir / "config.json", resolved)
            tracker.write_summary(summary)
        try:
            if status == "completed" and after is not None and accelerator.is_main_process:
                after(tracker)
        finally:
            tracker.finish(exit_code=0 if status in ("completed", "interrupted") else 1)
    if status == "completed" and not checklist["steps_match"]:
        raise RuntimeError(f"optimizer steps taken ({step}) != expected ({total_steps})")
    return summary


def _positions(metrics: dict, prefix: str) -> list[float]:
    ks = sorted(int(k.rsplit("/", 1)[1]) for k in metrics if k.startswith(prefix + "/"))
    return [metrics[f"{prefix}/{k}"] for k in ks]
