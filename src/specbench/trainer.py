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
import shutil
import time
import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from specbench import distributed, fairness, rundir
from specbench.algorithms import get_algorithm
from specbench.algorithms.base import tau_sim
from specbench.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    publish_weights,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from specbench.config import enum_value, validate
from specbench.data import build_dataset, collate, epoch_order
from specbench.errors import UserError
from specbench.feature_cache import human_size as _size
from specbench.io import write_json
from specbench.log import get_logger
from specbench.preemption import PreemptionGuard, exit_code, requeue, resumes_automatically
from specbench.run_summary import build_summary, positions
from specbench.target import forward_flops_per_token, load_target
from specbench.tracking import RunTracker

log = get_logger(__name__)


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
        top1 = positions(self.ratios(), "top1")
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


def resolve_device(trainer_cfg) -> str:
    """``trainer.device`` made concrete: ``auto`` is CUDA where visible, else the CPU."""
    device = enum_value(trainer_cfg.device)
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("trainer.device=cuda but no CUDA device is visible; use trainer.device="
                        "auto or cpu.")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _make_accelerator(trainer_cfg):
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    launch = distributed.init()  # python -m specbench did it already; a library call may not
    # The drafts' buffers (the target's embedding and lm_head, vocabulary maps) are frozen and
    # equal on every rank: DDP need not broadcast them (2 GB for an 8B target) every step.
    acc = Accelerator(mixed_precision=enum_value(trainer_cfg.precision),
                      cpu=resolve_device(trainer_cfg) == "cpu",
                      kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)])
    if acc.num_processes != launch.world:
        raise UserError(f"The launch started {launch.world} processes but accelerate sees "
                        f"{acc.num_processes} (trainer.device={enum_value(trainer_cfg.device)}"
                        "). Set trainer.device=cpu or cuda explicitly, or launch with torchrun "
                        "--nproc_per_node N.")
    return acc


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
        return TrainingRun(cfg, run_dir, stop_after_steps, after).run()


class LogWindow:
    """The metrics accumulated since the last logged step; checkpointed with the run, so rows
    after a resume equal those of an uninterrupted run."""

    def __init__(self):
        self.bank, self.loss, self.steps = CounterBank(), 0.0, 0
        self.t0, self.tokens = time.time(), 0

    def state(self) -> dict:
        return {"num": self.bank.num, "den": self.bank.den, "loss": self.loss,
                "steps": self.steps}

    def restore(self, saved: dict) -> None:
        self.bank.num, self.bank.den = saved["num"], saved["den"]
        self.loss, self.steps = saved["loss"], saved["steps"]

    def report(self, lr: float, grad_norm: float, epoch: int) -> dict:
        elapsed = time.time() - self.t0
        return {"train/loss": self.loss / self.steps, "train/lr": lr,
                "train/grad_norm": grad_norm,
                "train/tokens_per_s": self.tokens / max(elapsed, 1e-9),
                "train/epoch": epoch, **self.bank.report("train/")}


class TrainingRun:
    """One run of the shared trainer, in named phases: ``setup`` (target, data, fairness,
    feature source, draft, optimizer), ``resume``, ``train_step``, ``held_out_eval``,
    ``checkpoint`` and ``summary`` (``specbench.run_summary``); ``run`` sequences them."""

    def __init__(self, cfg: DictConfig, run_dir: Path, stop_after_steps: int | None = None,
                 after=None):
        self.cfg, self.tcfg, self.run_dir = cfg, cfg.trainer, Path(run_dir)
        self.stop_after_steps, self.after = stop_after_steps, after
        self.t_start = time.time()
        self.status, self.error = "running", None
        self.step, self.finishing = 0, False  # finishing: resumed after the last step
        self.stop_signal: int | None = None  # a preemption signal every rank agreed on
        self.window = LogWindow()
        self.last_train: dict = {}
        self.eval_metrics: dict = {}

    # -- the sequence -------------------------------------------------------------------
    def run(self) -> dict:
        validate(self.cfg)  # ranges and unknown keys (python -m specbench checked them already)
        self.previous = self.check_run_dir()
        self.setup()  # resumes from self.previous when trainer.resume=true
        self.start_tracking()
        self.guard = PreemptionGuard()
        try:
            with self.guard:  # SIGTERM / SIGUSR1: checkpoint after this step, then stop
                self.train_loop()
            self.finish_training()
            if self.status == "completed" and self.stop_signal is not None:
                # the signal came in the last step: the final checkpoint is written; the
                # evaluation is left to the resumed run, which finishes it
                self.status = "preempted"
        except BaseException as err:
            self.status, self.error = "failed", f"{type(err).__name__}: {err}"
            raise
        finally:
            summary = self.write_results()
        if self.status == "completed" and not summary["checklist"]["steps_match"]:
            raise RuntimeError(f"optimizer steps taken ({self.step}) != expected "
                               f"({self.total_steps})")
        if self.status == "preempted":
            self.leave_preempted()
        return summary

    def leave_preempted(self) -> None:
        """After the preemption checkpoint: say how the run continues, ask SLURM to requeue
        the job (SIGUSR1: the time limit is near) and exit with 128 + the signal."""
        import signal

        signum = self.stop_signal or signal.SIGTERM
        if self.main:
            log.warning(f"preempted ({signal.Signals(signum).name}) after optimizer step "
                        f"{self.step}: checkpoint {self.run_dir}/checkpoints/step-"
                        f"{self.step:07d} written. A requeued job, or any start in this run "
                        "directory, resumes from it: "
                        f"{rundir.resume_command(self.run_dir)}")
            if signum == getattr(signal, "SIGUSR1", None):
                requeue()
        raise SystemExit(exit_code(signum))

    def check_run_dir(self) -> Path | None:
        previous = latest_checkpoint(self.run_dir)
        self.resuming = bool(self.tcfg.resume)
        why = None if previous is None or self.resuming else \
            resumes_automatically(self.run_dir)
        if why is not None:
            log.info(f"{self.run_dir} holds checkpoints and {why}: resuming from "
                     f"{previous.name}")
            self.resuming = True
        if previous is not None and not self.resuming:
            raise UserError(f"{self.run_dir} already holds checkpoints ({previous.name}). To "
                            "continue or finish that run (training, then evaluation and export),"
                            f" run: {rundir.resume_command(self.run_dir)}  -- or choose a new run"
                            " directory (hydra.run.dir=...); existing checkpoints are never "
                            "overwritten.")
        if self.tcfg.resume and previous is None:  # killed before its first checkpoint
            warnings.warn(f"trainer.resume=true but {self.run_dir} holds no checkpoint (an "
                          "earlier attempt, if any, stopped before its first one): training "
                          "starts at step 0. Check hydra.run.dir if you meant to resume another "
                          "run.", stacklevel=2)
        return previous

    # -- setup ----------------------------------------------------------------------------
    def setup(self) -> None:
        cfg, tcfg = self.cfg, self.tcfg
        self.accelerator = _make_accelerator(tcfg)
        acc = self.accelerator
        self.device, self.world, self.rank = acc.device, acc.num_processes, acc.process_index
        self.main = acc.is_main_process
        self.strategy, self.draft_sharded = self.resolve_strategy()
        self.algo_cls = get_algorithm(cfg.algorithm.name)
        torch.manual_seed(tcfg.seed)
        # FSDP over a live target: read it into host memory, then each rank keeps its shards
        self.shard_live_target = self.strategy == "fsdp" and not cfg.cache.enabled
        self.target = load_target(cfg.model, seed=tcfg.seed,
                                  device="cpu" if self.shard_live_target else self.device)
        if cfg.decode.enabled:  # decoding settings the target's vocabulary cannot serve
            from specbench.evaluate import check_decode_against_target

            check_decode_against_target(cfg, self.target.config.vocab_size)
        self.dataset = build_dataset(cfg.data, self.target.tokenizer, tcfg.max_length,
                                     verbose=self.main, progress=tcfg.progress and self.main)
        self.setup_fairness()
        self.spec = self.algo_cls.feature_spec(cfg.algorithm, self.target.config)
        self.source = self.target  # a FeatureSource: the live target, or its feature cache
        self.fcache = None
        if cfg.cache.enabled:  # offline mode: see feature_cache.py
            from specbench.feature_cache import prepare

            self.fcache = prepare(cfg, self.target, self.dataset, self.spec, verbose=self.main)
            self.source = self.fcache
        if self.shard_live_target:  # before the draft borrows the embedding and lm_head
            n = distributed.shard_target(self.target, self.device)
            if self.main:
                log.info(f"FSDP2: the target's {n} decoder layers are sharded over "
                         f"{self.world} ranks; its embedding, final norm and lm_head are "
                         "replicated")
        self.setup_draft()

    def resolve_strategy(self) -> tuple[str, bool]:
        """(``single``, ``ddp`` or ``fsdp``; whether the draft is sharded)."""
        if self.world == 1:
            if enum_value(self.tcfg.distributed) == "fsdp" and self.main:
                log.warning("trainer.distributed=fsdp with one process: nothing to shard, the "
                            "run trains as a single process. Launch several processes "
                            "(torchrun --nproc_per_node N -m specbench ...) to shard.")
            return "single", False
        launch = distributed.launch()
        if launch.fsdp_from_accelerate or enum_value(self.tcfg.distributed) == "fsdp":
            shard = enum_value(self.tcfg.fsdp_draft) == "shard"
            if launch.fsdp_from_accelerate:
                shard = shard and launch.draft_sharded_by_accelerate
            return "fsdp", shard
        return "ddp", False

    def setup_fairness(self) -> None:
        """Global batch, fingerprint and step counts: the controlled part, printed."""
        tcfg, world = self.tcfg, self.world
        self.accum = fairness.resolve_grad_accum(tcfg, world)
        self.global_bs = fairness.global_batch(tcfg.micro_batch_size, self.accum, world)
        self.fp = fairness.fingerprint(self.cfg, self.dataset.conversations.sha256,
                                       world_size=world)
        if self.main:
            log.info(fairness.parameter_tables(self.cfg, self.fp))
            log.info(f"fingerprint {self.fp}  run dir {self.run_dir}")
        self.n_train = len(self.dataset.train)
        self.steps_per_epoch = math.ceil(self.n_train / self.global_bs)
        self.total_steps = fairness.expected_steps(self.n_train, self.global_bs, tcfg.epochs,
                                                   tcfg.max_steps)
        self.progress = {
            "epoch": 0, "step_in_epoch": 0, "tokens": 0, "loss_tokens": 0,
            "train_time_s": 0.0, "draft_flops": 0.0, "target_flops": 0.0,
            "fingerprint": self.fp, "algorithm": self.cfg.algorithm.name,
            "world_size": self.world, "global_batch": self.global_bs,
            # the SLURM job that wrote the checkpoints: only its requeue resumes by itself
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "algorithm_config": fairness.algorithm_variables(self.cfg),
            "controlled": fairness.flatten(fairness.controlled_variables(self.cfg))}

    def setup_draft(self) -> None:
        """The draft (fp32 master weights), the disk check, the checkpoint's weights when
        resuming, the distributed wrapping (DDP or FSDP2), AdamW and the schedule."""
        cfg, tcfg = self.cfg, self.tcfg
        torch.manual_seed(tcfg.seed)
        self.model = to_fp32_params(self.algo_cls.build(cfg.algorithm, self.target,
                                                        self.dataset), self.device)
        if not any(p.requires_grad for p in self.model.parameters()):
            raise UserError(f"algorithm={cfg.algorithm.name} with these settings has no "
                            "trainable parameters; change the algorithm settings (e.g. "
                            "algorithm.num_layers).")
        self.n_params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        # A checkpoint holds the weights and AdamW's two moments (fp32): keep + 1 at once.
        self.checkpoint_bytes = 3 * 4 * sum(t.numel() for t in self.model.state_dict().values())
        need = self.checkpoint_bytes * (tcfg.keep_checkpoints + 1)
        free = shutil.disk_usage(self.run_dir).free
        if free < need:
            raise UserError(f"Not enough disk for checkpoints in {self.run_dir}: about "
                            f"{_size(need)} needed, {_size(free)} free. Free space, lower "
                            "trainer.keep_checkpoints, or choose another hydra.run.dir.")
        saved = None
        if self.resuming and self.previous is not None:  # whole weights, before any wrapping
            weights, saved_state, saved = load_checkpoint(self.previous)
            self.check_same_settings(saved)
            self.model.load_trainable_state_dict(weights)
        if self.main:  # after the checks: a refused resume leaves the run's files alone
            serving = self.model.serving_config()
            if serving is not None:
                write_json(self.run_dir / "draft_config.json", serving)
        self.wrap()
        optimizer = make_optimizer(self.params, tcfg)
        warmup = math.ceil(tcfg.warmup_ratio * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                           lr_lambda(warmup, self.total_steps))
        self.autocast = enum_value(tcfg.precision) != "no"
        self.optimizer = self.accelerator.prepare(optimizer)
        if saved is not None:
            self.resume(saved_state, saved)

    def wrap(self) -> None:
        """``self.draft``: the loss module the training step calls (through forward(), so a
        distributed wrapper syncs gradients); ``self.params``: the trainable parameters."""
        loss_module = _LossForward(self.model)
        if self.draft_sharded:
            self.draft = distributed.shard_module(loss_module, self.device)
        else:
            self.draft = self.accelerator.prepare_model(loss_module)
        if self.strategy == "fsdp" and self.main:
            log.info("FSDP2: the draft is " + ("sharded" if self.draft_sharded else
                                               "replicated (DDP)"))
        self.params = [p for p in self.draft.parameters() if p.requires_grad]

    # -- resume ---------------------------------------------------------------------------
    def resume(self, state: dict, saved: dict) -> None:
        self.finishing = saved.get("step") == self.total_steps
        if self.draft_sharded:
            distributed.load_full_optimizer_state(self.draft, _unwrap(self.optimizer),
                                                  self.params, state["optimizer"])
        else:
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        per_rank = state["rng"].get("per_rank")
        if per_rank is not None and len(per_rank) == self.world:
            set_rng_state(per_rank[self.rank])
        else:
            set_rng_state({k: v for k, v in state["rng"].items() if k != "per_rank"})
            if self.world > 1 and self.main:
                log.warning(f"resuming with {self.world} processes from a checkpoint written "
                            f"by {saved.get('world_size', 1)}: each rank continues rank 0's "
                            "random stream, so random draws (DFlash's anchors) differ from an "
                            "uninterrupted run; deterministic algorithms are unaffected.")
        self.step = saved.pop("step")
        if "log_window" in saved:  # the metrics window open at the checkpoint
            self.window.restore(saved.pop("log_window"))
        for key in ("world_size", "global_batch", "slurm_job_id"):
            saved.pop(key, None)
        self.progress.update(saved)
        log.info(f"resumed from {self.previous} at step {self.step}"
                 + (": training is complete, finishing the run" if self.finishing else ""))

    def check_same_settings(self, saved: dict) -> None:
        if saved.get("fingerprint") != self.fp:
            diff = _diff(saved.get("controlled") or {}, self.progress["controlled"])
            if not diff and saved.get("global_batch") not in (None, self.global_bs):
                diff = (f"the global batch was {saved['global_batch']} (world size "
                        f"{saved.get('world_size')}) and is now {self.global_bs} (world size "
                        f"{self.world}); a run resumes under another world size only with the "
                        "same global batch: set trainer.global_batch_size="
                        f"{saved['global_batch']}")
            what = diff or "the training data's content or the world size changed"
            raise UserError(f"Cannot resume {self.run_dir}: its fingerprint "
                            f"{saved.get('fingerprint')} differs from this config's {self.fp}, "
                            f"so the controlled settings changed ({what}). Resume with the "
                            "original settings, or start a new run.")
        if saved.get("algorithm_config") != self.progress["algorithm_config"]:
            diff = _diff(saved.get("algorithm_config") or {},
                         self.progress["algorithm_config"], prefix="algorithm.")
            raise UserError(f"Cannot resume {self.run_dir} with different algorithm settings "
                            f"({diff}). Pass the original algorithm settings.")

    def start_tracking(self) -> None:
        self.resolved = OmegaConf.to_container(self.cfg, resolve=True, enum_to_str=True)
        self.tracker = RunTracker(self.run_dir, self.cfg.tracker, self.resolved, self.fp,
                                  self.cfg.algorithm.name,
                                  resume_id=self.progress.get("wandb_id"),
                                  resume_step=self.step, enabled=self.main)
        self.progress["wandb_id"] = self.tracker.wandb_info.get("run_id")
        if self.finishing:
            self.last_train = self.tracker.last_row("train/loss")

    # -- the loop -------------------------------------------------------------------------
    def train_loop(self) -> None:
        from tqdm import tqdm

        tcfg = self.tcfg
        bar = tqdm(total=self.total_steps, initial=self.step,
                   desc=f"train {self.cfg.algorithm.name}",
                   disable=not (tcfg.progress and self.main))
        self.window.t0 = time.time()
        self.draft.train()
        if (not self.finishing and self.main
                and os.environ.get("SPECBENCH_COMPILE", "1") != "0"):
            log.info("the first steps compile the fused loss kernels (torch.compile): "
                     "they take longer than the rest (SPECBENCH_COMPILE=0 skips compiling)")
        for epoch in range(self.progress["epoch"], 0 if self.finishing else tcfg.epochs):
            groups = self.epoch_groups(epoch)
            for s in range(self.progress["step_in_epoch"], self.steps_per_epoch):
                if self.step >= self.total_steps:
                    break
                self.train_step(groups[s], s, epoch)
                bar.update(1)
                if self.after_step():
                    bar.close()
                    return
            if self.step >= self.total_steps and \
                    self.progress["step_in_epoch"] < self.steps_per_epoch:
                break
            self.progress["epoch"] = epoch + 1
            self.progress["step_in_epoch"] = 0
        bar.close()

    def epoch_groups(self, epoch: int) -> list[list[list[int]]]:
        """Row indices of every optimizer step of ``epoch``: micro batches grouped by step."""
        order = epoch_order(self.n_train, self.tcfg.seed, epoch)
        mb, per_step = self.tcfg.micro_batch_size, self.accum * self.world
        micro = [order[i: i + mb] for i in range(0, self.n_train, mb)]
        return [micro[i: i + per_step] for i in range(0, len(micro), per_step)]

    def train_step(self, group: list[list[int]], s: int, epoch: int) -> None:
        """One optimizer step over ``group`` (this rank's share of its micro batches)."""
        t_step, world = time.time(), self.world
        mine = group[self.rank::world]
        # Every rank runs the same number of passes (DDP needs it): short ranks repeat a
        # batch with weight 0. DDP averages over ranks, hence world / len(group).
        slots = mine + [None] * (math.ceil(len(group) / world) - len(mine))
        step_loss, counts = 0.0, torch.zeros(5, dtype=torch.float64)
        step_bank = CounterBank() if world > 1 else self.window.bank
        for j, idx in enumerate(slots):
            real = idx is not None
            rows = idx if real else group[0]
            batch = self.batch("train", rows)
            feats = self.features("train", rows, batch)
            with self.gradient_sync(last=j == len(slots) - 1):
                with self.accelerator.autocast():
                    loss, counters = self.draft(feats, batch)
                self.accelerator.backward(loss * (world / len(group) if real else 0.0))
            if not real:
                continue
            loss_value = float(loss.detach())
            step_loss += loss_value / len(group)  # the mean over the step's micro batches
            step_bank.add(counters)
            counts += self.batch_counts(batch, counters, loss_value)
        if world > 1:  # every rank's figures: the logged metrics are the whole step's
            step_loss, counts = self.reduce_step(step_loss, counts, step_bank)
        ntok, nloss, dflops, tflops, nonfinite = counts.tolist()
        for key, value in (("tokens", int(ntok)), ("loss_tokens", int(nloss)),
                           ("draft_flops", dflops), ("target_flops", tflops)):
            self.progress[key] += value
        self.window.tokens += int(ntok)
        grad_norm = self.accelerator.clip_grad_norm_(self.params, self.tcfg.max_grad_norm)
        if distributed.is_dtensor(grad_norm):  # a sharded draft's norm, reduced over ranks
            grad_norm = grad_norm.full_tensor()
        self.check_finite(step_loss, float(grad_norm), bool(nonfinite))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.progress["step_in_epoch"] = s + 1
        self.progress["train_time_s"] += time.time() - t_step
        self.window.loss += step_loss
        self.window.steps += 1
        if self.step % self.tcfg.log_every == 0 or self.step == self.total_steps:
            self.last_train = self.window.report(self.scheduler.get_last_lr()[0],
                                                 float(grad_norm), epoch)
            self.tracker.log(self.last_train, self.step)
            self.window = LogWindow()

    def gradient_sync(self, last: bool):
        """Gradients are reduced over ranks on the step's last micro batch only."""
        if self.world == 1 or last:
            if self.draft_sharded:
                self.draft.set_requires_gradient_sync(True)
            return contextlib.nullcontext()
        if self.draft_sharded:
            self.draft.set_requires_gradient_sync(False)
            return contextlib.nullcontext()
        return self.accelerator.no_sync(self.draft)

    def reduce_step(self, step_loss: float, counts: torch.Tensor, bank: CounterBank):
        """Sum the step's loss share, counts and metric counters over ranks; the counters go
        into the log window, identical on every rank (so a checkpoint's window is whole). The
        same gather agrees on a preemption signal (it may reach some ranks only)."""
        gathered = distributed.all_gather((step_loss, counts.tolist(), bank.num, bank.den,
                                           self.guard.signum))
        self.stop_signal = next((g[4] for g in gathered if g[4] is not None), None)
        total = CounterBank()
        for _loss, _counts, num, den, _signal in gathered:
            for k in num:
                total.add({k: (num[k], den[k])})
        for k in sorted(total.num):
            self.window.bank.add({k: (total.num[k], total.den[k])})
        return (sum(g[0] for g in gathered),
                torch.tensor([sum(col) for col in zip(*(g[1] for g in gathered))],
                             dtype=torch.float64))

    def batch(self, split: str, rows: list[int]) -> dict:
        rows_of = self.dataset.train if split == "train" else self.dataset.eval
        batch = collate([rows_of[i] for i in rows], self.target.tokenizer.pad_token_id)
        return {k: v.to(self.device) for k, v in batch.items()}

    def features(self, split: str, rows: list[int], batch: dict):
        feats = self.source.batch_features(split, rows, batch, self.spec)
        return feats if self.autocast else feats.to(torch.float32)

    def batch_counts(self, batch: dict, counters: dict, loss_value: float) -> torch.Tensor:
        """[tokens, loss tokens, draft FLOPs, target FLOPs, non-finite loss] of a micro batch."""
        ntok = int(batch["attention_mask"].sum())
        target_flops = ntok * forward_flops_per_token(self.target.config,
                                                      batch["input_ids"].shape[1] / 2)
        return torch.tensor([ntok, int(batch["loss_mask"].sum()),
                             float(counters["draft_flops"][0]), target_flops,
                             0.0 if math.isfinite(loss_value) else 1.0], dtype=torch.float64)

    def check_finite(self, step_loss: float, grad_norm: float, nonfinite: bool) -> None:
        if nonfinite or not math.isfinite(grad_norm):
            raise TrainingDiverged(
                f"Training stopped at optimizer step {self.step + 1}: the "
                f"{'loss' if nonfinite else 'gradient norm'} is not finite (loss "
                f"{step_loss:.4g}, gradient norm {grad_norm:.4g}). The weights of this step "
                "were not applied and the run is marked failed. Corrupt input features (a "
                "damaged feature cache: delete it, or cache.enabled=false) or a learning rate "
                "too high for this precision (lower trainer.lr, or trainer.precision=no) are "
                "the usual causes.")

    def after_step(self) -> bool:
        """Held-out evaluation and checkpoints on their cadence; True when interrupted."""
        tcfg, step = self.tcfg, self.step
        if self.dataset.eval and (step % tcfg.eval_every == 0 or step == self.total_steps):
            self.eval_metrics = self.held_out_eval()
            self.tracker.log(self.eval_metrics, step)
        stopping = self.stop_after_steps is not None and step >= self.stop_after_steps
        if self.world == 1:  # several ranks agreed on it in reduce_step
            self.stop_signal = self.guard.signum
        # in the last step, the final checkpoint (finish_training) is the preemption's
        preempted = self.stop_signal is not None and step != self.total_steps
        if stopping or preempted or (tcfg.checkpoint_every and step % tcfg.checkpoint_every == 0
                                     and step != self.total_steps):
            self.checkpoint()
        if stopping:
            self.status = "interrupted"
        elif preempted:
            self.status = "preempted"
        return stopping or preempted

    # -- held-out evaluation, checkpoints, the end ---------------------------------------------
    def held_out_eval(self) -> dict:
        bank, loss_sum, n = CounterBank(), 0.0, 0
        rows, micro = self.dataset.eval, self.tcfg.micro_batch_size
        self.model.eval()
        with torch.no_grad():
            for i in range(0, len(rows), micro):
                idx = list(range(i, min(i + micro, len(rows))))
                batch = self.batch("eval", idx)
                feats = self.features("eval", idx, batch)
                with self.accelerator.autocast():  # a sharded draft runs through its wrapper
                    loss, counters = (self.draft(feats, batch) if self.draft_sharded
                                      else self.model.loss(feats, batch))
                bank.add(counters)
                loss_sum += float(loss)
                n += 1
        self.model.train()
        return {"eval/loss": loss_sum / max(1, n), **bank.report("eval/")}

    def checkpoint(self) -> Path:
        acc, run_dir, step = self.accelerator, self.run_dir, self.step
        acc.wait_for_everyone()
        weights = self.model.trainable_state_dict()
        if self.draft_sharded:  # whole tensors, gathered from every rank (a collective)
            weights = distributed.full_tensors(weights)
            optimizer_state = distributed.full_optimizer_state(
                self.draft, _unwrap(self.optimizer), self.params)
        else:
            optimizer_state = self.optimizer.state_dict()
        rng = rng_state()
        if self.world > 1:  # each rank's stream, restored per rank on resume
            rng["per_rank"] = distributed.all_gather(rng_state())
        if self.main:
            state = {**self.progress, "log_window": self.window.state()}
            try:
                save_checkpoint(run_dir, step, weights, optimizer_state, self.scheduler, state,
                                keep=self.tcfg.keep_checkpoints, rng=rng)
            except OSError as err:
                if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise UserError(f"The disk filled up while writing the checkpoint of step {step}"
                                f" in {run_dir}/checkpoints "
                                f"({_size(shutil.disk_usage(run_dir).free)} free; a checkpoint "
                                f"takes about {_size(self.checkpoint_bytes)}). The partial "
                                "checkpoint was removed and earlier ones are intact. Free "
                                f"space, then continue with: {rundir.resume_command(run_dir)}"
                                ) from None
        acc.wait_for_everyone()
        return run_dir / "checkpoints" / f"step-{step:07d}"

    def finish_training(self) -> None:
        """The final checkpoint (or, when finishing, the existing one) becomes the run's
        ``draft.safetensors``."""
        if self.status in ("interrupted", "preempted"):
            return
        if self.finishing:
            final = self.previous
            if self.dataset.eval:
                self.eval_metrics = self.held_out_eval()
        else:
            final = self.checkpoint()
        if self.main:
            publish_weights(final, self.run_dir / "draft.safetensors")
            if self.cfg.tracker.log_weights:
                self.tracker.log_weights(self.run_dir / "draft.safetensors",
                                         self.cfg.algorithm.name, self.fp, self.step)
        self.status = "completed"

    def write_results(self) -> dict:
        """summary.json and config.json, then ``after`` (evaluation, export) for a completed
        run, then the tracker's end. Returns the summary."""
        pending = self.status == "completed" and self.after is not None
        if pending:  # "completed" only once evaluation and export have run too
            self.status = "finishing"
        summary = build_summary(self)
        if self.main:
            write_json(self.run_dir / "config.json", self.resolved)
            self.tracker.write_summary(summary)
        try:
            if pending and self.main:
                try:
                    self.after(self.tracker)
                except BaseException as err:
                    self.status = "failed"
                    self.error = (f"after training (evaluation/export): {type(err).__name__}: "
                                  f"{err} -- the trained draft is kept; finish the run with: "
                                  f"{rundir.resume_command(self.run_dir)}")
                    raise
                finally:
                    if self.status == "finishing":
                        self.status = "completed"
                    summary.update(status=self.status, error=self.error)
                    self.tracker.write_summary(summary)
            elif pending:
                self.status = summary["status"] = "completed"
        finally:
            self.tracker.finish(exit_code=0 if self.status in ("completed", "interrupted",
                                                               "preempted") else 1)
        return summary


def _unwrap(optimizer):
    """The torch optimizer inside accelerate's wrapper."""
    return getattr(optimizer, "optimizer", optimizer)


def _diff(theirs: dict, ours: dict, prefix: str = "") -> str:
    return "; ".join(f"{prefix}{k}: checkpoint {theirs.get(k)!r}, now {ours.get(k)!r}"
                     for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k))
