"""Benchmark: target-forward-only vs full draft training step, in one process.

    python -m specbench.bench                         # Medusa on the embedded SmolLM2
    python -m specbench.bench algorithm.lm_head=shared trainer.micro_batch_size=4
    python -m specbench.bench --verify [--dtype=float32] [--json PATH]   # verify-forward cost
    python -m specbench.bench --verify --verify-mode=dynamic,static,compiled   # before/after

``--verify`` times what bounds a speculative decoder's speedup instead: one target forward over
q new tokens on top of a KV cache (as a verify step does), for q = 1 (plain decoding) up to 64,
interleaved, and prints each time relative to q = 1 and against the weight-read floor (the
target's weight bytes over this machine's memory bandwidth, measured with a large copy). Speedup
is at most tau x t(1) / t(q). ``--json PATH`` writes the table.

Prints tokens/s, analytic FLOPs per token and the achieved FLOP rate of (a) the frozen target
forward alone and (b) a full training step (target forward + draft forward/backward +
optimizer step), on real batches of the configured data. Both are timed interleaved, so their
ratio is meaningful even on a noisy machine. Extra arguments are Hydra overrides.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

from specbench.algorithms import get_algorithm
from specbench.config import compose_checked
from specbench.data import build_dataset, collate
from specbench.decoding import VERIFY_MODES, Tree
from specbench.errors import UserError
from specbench.target import forward_flops_per_token, load_target
from specbench.trainer import _make_accelerator, make_optimizer, to_fp32_params


def memory_bandwidth(nbytes: int = 1 << 29, reps: int = 5) -> float:
    """This machine's memory bandwidth in bytes/s: the median of ``reps`` copies of a
    ``nbytes`` buffer (each reads and writes it: 2 x nbytes moved), on the CPU, or on the GPU
    when one is visible."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    times = []
    for rep in range(reps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        dst.copy_(src)
        if device == "cuda":
            torch.cuda.synchronize()
        if rep:  # the first copy warms up (page faults)
            times.append(time.perf_counter() - t0)
    return 2 * nbytes / statistics.median(times)


def weight_bytes(model: torch.nn.Module) -> int:
    """The bytes a forward reads at least once: every parameter, a tied one counted once."""
    seen, total = set(), 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    return total


VERIFY_SIZES = (1, 2, 4, 8, 16, 32, 64)


@torch.no_grad()
def _verify_timer(target, mode: str, context: int, g: torch.Generator):
    """A function q -> seconds of one verify forward of q new tokens over ``context`` cached
    ones, run the way ``decode.verify=mode`` runs it (dynamic: a fresh DynamicCache filled by a
    prefill each time; static modes: one preallocated cache, the query padded to its bucket)."""
    from transformers import DynamicCache

    from specbench.decoding import _target_forward
    from specbench.static_verify import StaticVerifier

    model, device = target.model, target.device
    vocab = target.config.vocab_size
    prefix = torch.randint(0, vocab, (context,), generator=g).tolist()
    sv = None
    if mode != "dynamic":
        sv = StaticVerifier(model, device, context + 2 * VERIFY_SIZES[-1], mode)
        sv.prefill(prefix)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(q: int) -> float:
        new = torch.randint(0, vocab, (q,), generator=g).tolist()
        if sv is None:
            cache = DynamicCache()
            _target_forward(model, torch.tensor([prefix], device=device), cache,
                            torch.arange(context, device=device)[None])
        sync()
        t0 = time.perf_counter()
        if sv is None:
            _target_forward(model, torch.tensor([new], device=device), cache,
                            torch.arange(context, context + q, device=device)[None])
        else:
            sv.verify(context, new, list(range(context, context + q)), Tree.chain(new[1:]))
        sync()
        return time.perf_counter() - t0

    return timed


@torch.no_grad()
@torch.no_grad()
def _draft_timer(target, cfg, mode: str, context: int):
    """A function () -> seconds of one chain draft step (one new position through the draft
    layer, then its next-token argmax) of the configured algorithm, randomly initialised, over
    ``context`` cached positions, run the way ``decode.verify=mode`` runs it; None for an
    algorithm whose draft has no KV cache of its own (only EAGLE-3's has one)."""
    algorithm = get_algorithm(cfg.algorithm.name)
    if not hasattr(algorithm, "new_cache"):
        return None
    draft = algorithm.build(cfg.algorithm, target).to(device=target.device, dtype=target.model.dtype).eval()
    g = torch.Generator().manual_seed(1)
    width = draft.fc.weight.shape[0]
    hidden = torch.randn(1, context, width, generator=g).to(target.device, draft.fc.weight.dtype)
    ids = torch.randint(0, target.config.vocab_size, (1, context + 1), generator=g)
    ids = ids.to(target.device)
    cache = draft.new_cache(mode, context + 64)
    draft.extend(hidden, ids[:, :context], 0, cache, eager=True)

    def timed() -> float:
        cache.crop(context)
        if target.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        h = draft.extend(hidden[:, -1:], ids[:, context:], context, cache)
        int(draft.draft_logits(h[0, -1]).argmax())  # the token, as a proposer reads it
        return time.perf_counter() - t0

    return timed


def verify_cost(argv: list[str], dtype: str, context: int = 256, reps: int = 5,
                json_path: str | None = None, modes: tuple[str, ...] = ("dynamic",)) -> int:
    """Time one verify forward of q new tokens over a ``context``-token KV cache for each q in
    ``VERIFY_SIZES`` and each verify mode (interleaved), against the weight-read floor: the
    target's weight bytes over this machine's memory bandwidth. Prints the table (before/after:
    one block per mode); ``json_path`` also writes it."""
    try:
        if dtype not in ("float32", "bfloat16", "float16"):
            raise UserError(f"--dtype={dtype}: choose float32, bfloat16 or float16.")
        cfg = compose_checked([f"model.dtype={dtype}", *argv], "python -m specbench.bench")
        target = load_target(cfg.model, device="cpu" if not torch.cuda.is_available()
                             else "cuda")
        if "graphs" in modes and target.device.type != "cuda":
            raise UserError("--verify-mode=graphs captures CUDA graphs and needs a GPU; on a "
                            "CPU use --verify-mode=dynamic,static,compiled.")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    device = target.device
    bandwidth, wbytes = memory_bandwidth(), weight_bytes(target.model)
    floor = wbytes / bandwidth
    g = torch.Generator().manual_seed(0)
    timers = {m: _verify_timer(target, m, context, g) for m in modes}
    drafts = {m: _draft_timer(target, cfg, m, context) for m in modes}
    times = {(m, q): [] for m in modes for q in VERIFY_SIZES}
    draft_times = {m: [] for m in modes}
    for rep in range(reps + 2):  # the first two rounds warm up (and compile)
        for q in VERIFY_SIZES:  # interleaved, so that drift hits every size and mode alike
            for m in modes:
                t = timers[m](q)
                if rep >= 2:
                    times[m, q].append(t)
        for m in modes:
            if drafts[m] is not None:
                t = drafts[m]()
                if rep >= 2:
                    draft_times[m].append(t)
    draft_ms = {m: 1000 * statistics.median(v) for m, v in draft_times.items() if v}
    rows = []
    for m in modes:
        base = statistics.median(times[m, 1])
        rows += [{"mode": m, "q": q, "time_ms": 1000 * statistics.median(times[m, q]),
                  "ratio_to_q1": statistics.median(times[m, q]) / base,
                  "floor_over_time": floor / statistics.median(times[m, q]), "dtype": dtype}
                 for q in VERIFY_SIZES]
    print(f"specbench bench --verify: {cfg.model.name} ({dtype}) on {device}, "
          f"{torch.get_num_threads()} threads, {context} cached tokens, median of {reps}")
    print(f"  memory bandwidth {bandwidth / 1e9:.1f} GB/s (copy), weights {wbytes / 1e6:.0f} MB:"
          f" weight-read floor {1000 * floor:.1f} ms per step")
    print(f"  {'verify':>9s}{'new tokens q':>14s}{'ms':>9s}{'t(q)/t(1)':>11s}{'floor/t':>9s}"
          f"{'max speedup / tau':>19s}")
    for r in rows:
        print(f"  {r['mode']:>9s}{r['q']:14d}{r['time_ms']:9.1f}{r['ratio_to_q1']:11.2f}"
              f"{r['floor_over_time']:9.2f}{1 / r['ratio_to_q1']:19.2f}")
    for m, ms in draft_ms.items():
        print(f"  {m:>9s} {cfg.algorithm.name} draft step (one chain token, {context} cached): "
              f"{ms:.2f} ms")
    if not draft_ms:
        print(f"  ({cfg.algorithm.name}'s draft keeps no KV cache: algorithm=eagle3 also times "
              "an EAGLE-3 draft step)")
    if json_path:
        from specbench.io import write_json

        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(json_path), {
            "model": cfg.model.name, "dtype": dtype, "device": str(device),
            "threads": torch.get_num_threads(), "context": context, "reps": reps,
            "modes": list(modes), "bandwidth_bytes_per_s": bandwidth, "weight_bytes": wbytes,
            "floor_ms": 1000 * floor, "rows": rows,
            "draft_step_ms": {"algorithm": cfg.algorithm.name, **draft_ms}})
        print(f"  written {json_path}")
    return 0


def _join_json(argv: list[str]) -> list[str]:
    """``--json PATH`` as ``--json=PATH``."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--json":
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                raise UserError("--json needs a file path: --json PATH")
            out.append(f"--json={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def _parse(argv: list[str]) -> tuple[str, list[str], dict]:
    """(mode, Hydra overrides, options) of the command line; mode is help/verify/train.
    Raises UserError for an unknown option or a bad --iters."""
    if "-h" in argv or "--help" in argv:
        return "help", [], {}
    argv = _join_json(argv)
    unknown = [a for a in argv if a.startswith("-") and a != "--verify"
               and not a.startswith(("--dtype=", "--iters=", "--json=", "--verify-mode="))]
    if unknown:
        raise UserError(f"unknown option {unknown[0]}; bench takes --verify, --dtype=float32|"
                        "bfloat16, --json PATH and --verify-mode=M[,M...] (with --verify), "
                        "--iters=N and Hydra overrides (key=value). See --help.")
    opts = {"dtype": "float32", "iters": 4, "json": None, "modes": ("dynamic",)}
    overrides = []
    for a in argv:
        if a.startswith("--json="):
            opts["json"] = a.split("=", 1)[1]
            if not opts["json"] or Path(opts["json"]).is_dir():
                raise UserError(f"{a}: give the path of a file to write (its folder is "
                                "created if missing).")
        elif a.startswith("--dtype="):
            opts["dtype"] = a.split("=", 1)[1]
        elif a.startswith("--verify-mode="):
            opts["modes"] = tuple(a.split("=", 1)[1].split(","))
            bad = [m for m in opts["modes"] if m not in VERIFY_MODES]
            if bad:
                raise UserError(f"{a}: {bad[0]!r} is not a verify mode; choose from "
                                f"{', '.join(VERIFY_MODES)} (comma-separated).")
        elif a.startswith("--iters="):
            try:
                opts["iters"] = int(a.split("=", 1)[1])
            except ValueError:
                opts["iters"] = 0
            if opts["iters"] < 1:
                raise UserError(f"{a}: give a whole number of timed batches, at least 1.")
        elif a != "--verify":
            overrides.append(a)
    return ("verify" if "--verify" in argv else "train"), overrides, opts


def main(argv=None) -> int:
    from specbench.host_memory import keep_freed_memory

    kept = keep_freed_memory()  # opt-in: SPECBENCH_KEEP_FREED_MEMORY=1, as python -m specbench
    print(f"host memory: freed blocks {'kept for reuse' if kept else 'glibc defaults'}")
    try:
        mode, overrides, opts = _parse(list(sys.argv[1:] if argv is None else argv))
        if mode == "help":
            print(__doc__.strip())
            print("\nOptions: --verify, --dtype=float32|bfloat16, --json PATH and "
                  "--verify-mode=dynamic,static,compiled,graphs (with --verify), "
                  "--iters=N "
                  "(timed batches, default 4); any other argument is a Hydra override.")
            return 0
        if mode == "verify":
            return verify_cost(overrides, opts["dtype"], json_path=opts["json"],
                               modes=opts["modes"])
        cfg = compose_checked(["trainer.max_length=256", *overrides], "python -m specbench.bench")
        accelerator = _make_accelerator(cfg.trainer)
        target = load_target(cfg.model, seed=cfg.trainer.seed, device=accelerator.device)
        data = build_dataset(cfg.data, target.tokenizer, cfg.trainer.max_length)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _report(cfg, accelerator.device, *_time_steps(cfg, accelerator, target, data, opts["iters"]))
    return 0


def _time_steps(cfg, accelerator, target, data, iters: int):
    """Interleaved timings of the target forward alone and of a full training step, on
    ``iters`` batches of similar length (after one warm-up each)."""
    device, tcfg = accelerator.device, cfg.trainer
    algo = get_algorithm(cfg.algorithm.name)
    spec = algo.feature_spec(cfg.algorithm, target.config)
    draft = to_fp32_params(algo.build(cfg.algorithm, target, data), device)
    params = [p for p in draft.parameters() if p.requires_grad]
    opt = make_optimizer(params, tcfg)
    mb = tcfg.micro_batch_size
    # batches of similar length, so both measurements see the same shapes
    rows = sorted(data.train, key=lambda r: len(r.input_ids))
    batches = [collate(rows[i: i + mb], target.tokenizer.pad_token_id)
               for i in range(len(rows) // 2, len(rows) // 2 + mb * (iters + 1), mb)]
    batches = [{k: v.to(device) for k, v in b.items()} for b in batches]

    def forward_only(b):
        target.features(b["input_ids"], b["attention_mask"], spec)

    def train_step(b):
        feats = target.features(b["input_ids"], b["attention_mask"], spec)
        with accelerator.autocast():
            loss, counters = draft.loss(feats, b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return counters

    def timed(fn, b):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn(b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0, out

    forward_only(batches[0])  # warm-up
    train_step(batches[0])
    t_fwd, t_train, draft_flops = [], [], []
    for b in batches[1:]:
        t_fwd.append(timed(forward_only, b)[0])
        dt, counters = timed(train_step, b)
        t_train.append(dt)
        draft_flops.append(float(counters["draft_flops"][0]))
    return batches[1:], t_fwd, t_train, draft_flops, target


def _report(cfg, device, batches, t_fwd, t_train, draft_flops, target) -> None:
    tcfg = cfg.trainer
    tokens = [float(b["input_ids"].numel()) for b in batches]
    seq = statistics.mean(b["input_ids"].shape[1] for b in batches)
    f_target = forward_flops_per_token(target.config, seq / 2)
    f_draft = sum(draft_flops) / sum(tokens)  # the algorithm's analytic count for these batches
    fwd_tps = sum(tokens) / sum(t_fwd)
    train_tps = sum(tokens) / sum(t_train)
    fwd_rate = fwd_tps * f_target
    train_rate = train_tps * (f_target + f_draft)
    print(f"specbench bench: {cfg.algorithm.name} on {cfg.model.name} ({cfg.model.dtype.value}), "
          f"precision {tcfg.precision.value}, device {device}, {torch.get_num_threads()} threads")
    print(f"  batches: {len(tokens)} x {tcfg.micro_batch_size} rows, padded length ~{seq:.0f}")
    print(f"  {'':28s}{'tokens/s':>10s}{'GFLOP/token':>13s}{'GFLOP/s':>10s}")
    print(f"  {'target forward only':28s}{fwd_tps:10.0f}{f_target / 1e9:13.3f}"
          f"{fwd_rate / 1e9:10.1f}")
    print(f"  {'full training step':28s}{train_tps:10.0f}{(f_target + f_draft) / 1e9:13.3f}"
          f"{train_rate / 1e9:10.1f}")
    print(f"  training step / forward: time x{sum(t_train) / sum(t_fwd):.2f}, "
          f"FLOP-rate ratio {train_rate / fwd_rate:.2f} (goal >= 0.8)")


if __name__ == "__main__":
    sys.exit(main())
