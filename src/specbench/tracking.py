"""Run tracking: always local files (metrics.jsonl, summary.json), plus Weights & Biases.

W&B runs offline unless ``tracker.mode=online``; its runs are grouped by fingerprint with
``job_type`` = algorithm. If W&B fails to start or to log, a warning is printed and the local
files carry on.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

from specbench.config import enum_value
from specbench.fairness import flatten
from specbench.io import atomic_write_text, read_jsonl, write_json


def group_name(controlled: dict, fingerprint: str) -> str:
    """The W&B group of a fingerprint: a readable prefix before the fingerprint itself, made of
    controlled settings only (the target, the data file, the seed), so runs that share a
    fingerprint share the group. ``controlled`` is flat (``model.hub_id``, ...)."""
    def short(value) -> str:
        name = str(value).replace(":", "/").rstrip("/").rsplit("/", 1)[-1]
        return re.sub(r"(\.jsonl|\.json|\.gz)+$", "", name) or "?"

    model = controlled.get("model.hub_id") or controlled.get("model.path") or \
        controlled.get("model.source") or "?"
    data = controlled.get("data.path") or controlled.get("data.hub_id") or "?"
    return f"{short(model)}.{short(data)}.seed{controlled.get('trainer.seed', '?')}.{fingerprint}"


def run_name(run_dir: Path) -> str:
    """A W&B run name unique across launches and sweeps: the run folder under its parent
    (``2026-01-01/12-00-00-123456-medusa``; in a sweep ``12-00-00-123456/0-medusa``)."""
    run_dir = Path(run_dir).resolve()
    return f"{run_dir.parent.name}/{run_dir.name}"


class RunTracker:
    def __init__(self, run_dir: Path, tracker_cfg, config: dict, fingerprint: str,
                 algorithm: str, resume_id: str | None = None, resume_step: int = 0,
                 enabled: bool = True, metrics: bool = True):
        """``enabled=False`` (non-main ranks) writes nothing. On resume, metrics rows logged
        after the checkpoint's step are dropped: those steps are trained again. ``metrics=False``
        (a standalone evaluation) leaves metrics.jsonl alone."""
        self.run_dir = Path(run_dir)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.enabled = enabled
        self.wandb_run = None
        self.wandb_info: dict = {"mode": enum_value(tracker_cfg.mode)}
        if enabled and metrics and self.metrics_path.is_file():
            if resume_step:
                rows = [json.dumps(r) for r in read_metrics(self.metrics_path)
                        if r.get("step", 0) <= resume_step]
                atomic_write_text(self.metrics_path, "".join(r + "\n" for r in rows))
            else:  # a fresh start over the rows of a run that died before its first checkpoint
                n = 1
                while (aside := self.run_dir / f"metrics-abandoned-{n}.jsonl").exists():
                    n += 1
                self.metrics_path.rename(aside)
                warnings.warn(f"{self.metrics_path} held rows of an earlier attempt that never "
                              f"reached a checkpoint; they were moved to {aside.name}.",
                              stacklevel=2)
        if self.wandb_info["mode"] == "disabled" or not enabled:
            return
        try:
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb

            self.wandb_run = wandb.init(
                project=tracker_cfg.project, entity=tracker_cfg.entity,
                group=self._group(config, fingerprint), job_type=algorithm, config=config,
                name=run_name(self.run_dir), dir=str(self.run_dir), mode=self.wandb_info["mode"],
                tags=list(tracker_cfg.tags), id=resume_id, resume="allow" if resume_id else None,
                reinit="finish_previous",
            )
            # every curve against the optimizer step; summaries hold the final train figures
            # and the best held-out ones, so W&B's runs table compares runs directly
            self.wandb_run.define_metric("train/step")
            self.wandb_run.define_metric("*", step_metric="train/step")
            self.wandb_run.define_metric("eval/loss", step_metric="train/step", summary="min")
            for name in ("eval/tau_sim", "eval/top1/*", "eval/top5/*"):
                self.wandb_run.define_metric(name, step_metric="train/step", summary="max")
            self.wandb_info.update(run_id=self.wandb_run.id, dir=str(Path(self.wandb_run.dir)
                                                                    .parent.relative_to(
                                                                        self.run_dir.resolve())))
        except Exception as err:  # never let tracking kill a training run
            warnings.warn(f"W&B could not start ({type(err).__name__}: {err}); continuing with "
                          "local metrics.jsonl and summary.json only. Set tracker.mode=disabled "
                          "to silence this.", stacklevel=2)
            self.wandb_run = None
            self.wandb_info["error"] = f"{type(err).__name__}: {err}"

    @staticmethod
    def _group(config: dict, fingerprint: str) -> str:
        return group_name(flatten({k: config.get(k) or {} for k in ("model", "data", "trainer")}),
                          fingerprint)

    def log_weights(self, path: Path, algorithm: str, fingerprint: str, step: int) -> None:
        """The draft's weights file as a W&B model artifact (``tracker.log_weights=true``),
        named ``draft-<algorithm>-<fingerprint>``, one version per run."""
        if self.wandb_run is None:
            return
        try:
            import wandb

            art = wandb.Artifact(f"draft-{algorithm}-{fingerprint}", type="model",
                                 metadata={"algorithm": algorithm, "fingerprint": fingerprint,
                                           "step": step, "run_dir": str(self.run_dir)})
            art.add_file(str(path), name=Path(path).name)
            self.wandb_run.log_artifact(art, aliases=["latest", f"step-{step}"])
        except Exception as err:
            warnings.warn(f"W&B could not log the weights artifact ({err}); {path} is written.",
                          stacklevel=2)

    def last_row(self, key: str) -> dict:
        """The newest metrics row holding ``key`` (without its ``step``), or {}."""
        if not self.metrics_path.is_file():
            return {}
        rows = [r for r in read_metrics(self.metrics_path) if key in r]
        return {k: v for k, v in rows[-1].items() if k != "step"} if rows else {}

    def log(self, metrics: dict, step: int) -> None:
        if not self.enabled:
            return
        row = {"step": step, **metrics}
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.wandb_run is not None:
            try:
                self.wandb_run.log({"train/step": step, **metrics})
            except Exception as err:
                warnings.warn(f"W&B log failed ({err}); local files continue.", stacklevel=2)

    def write_summary(self, summary: dict) -> None:
        if not self.enabled:
            return
        write_json(self.run_dir / "summary.json", summary)
        if self.wandb_run is not None:
            try:
                flat = {k: v for k, v in flatten(summary, sep="/", lists=True).items()
                        if isinstance(v, (int, float, str, bool))}
                self.wandb_run.summary.update(flat)
            except Exception as err:
                warnings.warn(f"W&B summary failed ({err}); summary.json is written.",
                              stacklevel=2)

    def log_eval(self, result: dict) -> None:
        """Decoding results (``evaluate``): W&B summary metrics ``decode/<method>/<metric>``
        (overall), the draft's methods also as ``decode/draft_<kind>/<metric>`` (chain, tree,
        block: the same key for every algorithm), and a per-category table, one row per
        (category, method)."""
        if self.wandb_run is None:
            return
        try:
            import wandb

            metrics = ("tau", "tokens_per_forward", "draft_nodes_mean", "draft_nodes_max",
                       "speedup", "tokens_per_s", "draft_time_share", "exact")
            self.wandb_run.summary.update({f"decode/{m}/{k}": v[k]
                                           for m, v in result["overall"].items() for k in metrics})
            # the same figures under algorithm-neutral names (decode/draft_tree/tau for
            # medusa_tree, eagle3_tree, ...): one W&B chart compares every algorithm's tree
            prefix = f"{result.get('algorithm')}_"
            self.wandb_run.summary.update({
                f"decode/draft_{m[len(prefix):]}/{k}": v[k]
                for m, v in result["overall"].items() if m.startswith(prefix) for k in metrics})
            self.wandb_run.summary.update({  # the acceptance at each draft position
                f"decode/{m}/acceptance/{k}": a for m, v in result["overall"].items()
                for k, a in enumerate(v.get("acceptance_by_position") or [])})
            table = wandb.Table(columns=["category", "method", *metrics, "target_forwards"])
            for cat, agg in [("overall", result["overall"]), *result["per_category"].items()]:
                for m, v in agg.items():
                    table.add_data(cat, m, *(v[k] for k in metrics), v["target_forwards"])
            self.wandb_run.log({"decode/per_category": table})
        except Exception as err:
            warnings.warn(f"W&B eval logging failed ({err}); eval.json is written.",
                          stacklevel=2)

    def finish(self, exit_code: int = 0) -> None:
        if self.wandb_run is not None:
            try:
                self.wandb_run.finish(exit_code=exit_code)
                # finish() can return before the offline .wandb file is complete; teardown
                # waits for W&B's service to write it (the next run starts a new service)
                import wandb

                wandb.teardown()
            except Exception as err:
                warnings.warn(f"W&B finish failed ({err}).", stacklevel=2)
            self.wandb_run = None


def read_metrics(path: Path) -> list[dict]:
    """The rows of a ``metrics.jsonl``. A cut-off last line (the process died mid-write) is
    dropped: that step is trained (and logged) again; a damaged line elsewhere is an error
    naming the file and line number."""
    return read_jsonl(path, "The file is damaged: move it away to continue the run without "
                            "its earlier rows.")
