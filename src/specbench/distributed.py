"""Several processes, one run: the launch, the process group, and FSDP2 sharding.

Every launcher that starts N processes gives a run of world size N:

- ``torchrun --nproc_per_node N -m specbench ...`` and ``accelerate launch --multi_gpu
  --num_processes N -m specbench ...`` (also ``--use_fsdp``) set ``WORLD_SIZE``, ``RANK``,
  ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
- SLURM's ``srun`` (and the submitit launcher, which runs ``srun``) sets ``SLURM_PROCID``,
  ``SLURM_LOCALID`` and ``SLURM_STEP_NUM_TASKS``; ``from_slurm`` turns them into the variables
  above, with rank 0's node as the rendezvous address.

``init`` forms the process group once per process, before Hydra composes the config: gloo for
CPU tensors (and NCCL for CUDA ones where CUDA is visible), so ``trainer.device=auto`` works on
a CPU-only node too. A launch that cannot work is refused with a message naming the fix:
``WORLD_SIZE`` without a rendezvous address, ``accelerate launch --cpu --num_processes N``
(accelerate starts one process there), or peers that never arrive (after
``SPECBENCH_DIST_TIMEOUT_S`` seconds, 1800 by default).

Rank 0 decides what must be the same everywhere (the clock that names the run directory, the
run directory itself) and broadcasts it. Only rank 0 writes files, prints results and opens a
W&B run; metrics are reduced over ranks before they are logged (``trainer.py``).

Sharding (``trainer.distributed=fsdp``, or accelerate's FSDP plugin): PyTorch's FSDP2
(``torch.distributed.fsdp.fully_shard``). The frozen target's decoder layers are sharded, each
gathered only for its own forward; its embedding, final norm and lm_head stay replicated (every
draft reads them). The draft is sharded (``trainer.fsdp_draft=shard``) or replicated with DDP
(``replicate``). Checkpoints hold full tensors, gathered through distributed state dicts, in the
same safetensors layout as a single process writes, so a run resumes under any world size with
the same global batch.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass

import torch

from specbench.errors import UserError

TIMEOUT_ENV = "SPECBENCH_DIST_TIMEOUT_S"


@dataclass(frozen=True)
class Launch:
    world: int
    rank: int
    local_rank: int
    launcher: str  # "single", "torchrun/accelerate", "slurm"
    fsdp_from_accelerate: bool = False
    draft_sharded_by_accelerate: bool = True


def _int(env, key: str) -> int | None:
    value = env.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise UserError(f"The environment variable {key}={value!r} is not an integer; it is "
                        "set by the launcher (torchrun, accelerate launch, srun). Unset it for "
                        "a single-process run, or launch with torchrun --nproc_per_node N."
                        ) from None


def first_slurm_host(nodelist: str) -> str:
    """The first host name of a SLURM node list such as ``gpu[03-05,07]-ib,cpu1``."""
    first = re.match(r"([^,\[]+)(?:\[([^\]]+)\]([^,]*))?", nodelist.strip())
    if first is None:
        return nodelist
    name, ranges, suffix = first.groups()
    if not ranges:
        return name
    lo = ranges.split(",")[0].split("-")[0]
    return f"{name}{lo}{suffix or ''}"


def from_slurm(env) -> None:
    """Fill ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``/``MASTER_*`` from an ``srun`` step's
    variables (in place), unless a launcher already set them."""
    if env.get("WORLD_SIZE") or env.get("SLURM_PROCID") is None:
        return
    tasks = _int(env, "SLURM_STEP_NUM_TASKS") or 1
    if tasks <= 1:
        return
    env["WORLD_SIZE"] = str(tasks)
    env["RANK"] = env["SLURM_PROCID"]
    env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
    if not env.get("MASTER_ADDR"):
        nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST")
        env["MASTER_ADDR"] = first_slurm_host(nodes) if nodes else \
            env.get("SLURM_LAUNCH_NODE_IPADDR", "127.0.0.1")
    if not env.get("MASTER_PORT"):  # one port per job, the same on every task
        env["MASTER_PORT"] = str(20000 + (_int(env, "SLURM_JOB_ID") or 0) % 20000)
    env["SPECBENCH_LAUNCHER"] = "slurm"


def from_submitit_local(env) -> None:
    """The same for submitit's local executor (``hydra/launcher=local`` with
    ``hydra.launcher.tasks_per_node=N``): its tasks run on this machine."""
    if env.get("WORLD_SIZE") or env.get("SUBMITIT_EXECUTOR") != "local":
        return
    tasks = _int(env, "SUBMITIT_LOCAL_NTASKS") or 1
    if tasks <= 1 or env.get("SUBMITIT_LOCAL_GLOBALID") is None:
        return
    env["WORLD_SIZE"] = str(tasks)
    env["RANK"] = env["SUBMITIT_LOCAL_GLOBALID"]
    env["LOCAL_RANK"] = env.get("SUBMITIT_LOCAL_LOCALID", env["RANK"])
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    if not env.get("MASTER_PORT"):  # one port per job, the same on every task
        job = re.sub(r"\D", "", env.get("SUBMITIT_LOCAL_JOB_ID", "") or "0")[-6:] or "0"
        env["MASTER_PORT"] = str(20000 + int(job) % 20000)
    env["SPECBENCH_LAUNCHER"] = "submitit-local"


def check_accelerate_cpu(env) -> None:
    """``accelerate launch --cpu --num_processes N`` starts ONE process (accelerate's CPU
    launcher needs MPI for more): refuse instead of training silently with world size 1."""
    if env.get("WORLD_SIZE") or env.get("ACCELERATE_USE_CPU", "").lower() != "true":
        return
    try:
        import psutil

        words = psutil.Process().parent().cmdline()
    except Exception:  # noqa: BLE001 - no parent to read: nothing to check
        return
    if not any(w.endswith("accelerate") or w == "launch" for w in words[:3]):
        return
    n = 1
    for i, w in enumerate(words):
        if w in ("--num_processes", "--num-processes") and i + 1 < len(words):
            n = int(words[i + 1]) if words[i + 1].isdigit() else 1
        elif w.startswith(("--num_processes=", "--num-processes=")):
            value = w.split("=", 1)[1]
            n = int(value) if value.isdigit() else 1
    if n > 1:
        raise UserError(
            f"accelerate launch --cpu --num_processes {n} starts only one process (accelerate's "
            "CPU launcher runs several only through MPI), so this would train with world size "
            f"1. For {n} CPU processes run: accelerate launch --multi_gpu --num_processes "
            f"{n} -m specbench ... (specbench trains on the CPU with gloo when no GPU is "
            f"visible), or torchrun --nproc_per_node {n} -m specbench ...")


def launch_from_env(env=None) -> Launch:
    """The launch this process belongs to, read from the environment (SLURM's variables
    translated first). Raises UserError for a launch that cannot form a process group."""
    env = os.environ if env is None else env
    from_slurm(env)
    from_submitit_local(env)
    check_accelerate_cpu(env)
    world = _int(env, "WORLD_SIZE") or 1
    if world <= 1:
        return Launch(1, 0, 0, "single")
    rank, local = _int(env, "RANK"), _int(env, "LOCAL_RANK")
    missing = [k for k, v in (("RANK", rank), ("MASTER_ADDR", env.get("MASTER_ADDR")),
                              ("MASTER_PORT", env.get("MASTER_PORT"))) if v in (None, "")]
    if missing:
        raise UserError(
            f"WORLD_SIZE={world} is set but {', '.join(missing)} is not, so the {world} "
            "processes cannot find each other. Start them with a launcher that sets all of "
            f"these: torchrun --nproc_per_node {world} -m specbench ..., accelerate launch "
            f"--multi_gpu --num_processes {world} -m specbench ..., or srun; or unset "
            "WORLD_SIZE for a single-process run.")
    if not 0 <= rank < world:
        raise UserError(f"RANK={rank} is outside 0..{world - 1} (WORLD_SIZE={world}); the "
                        "launcher's variables disagree. Launch with torchrun or srun instead of "
                        "setting them by hand.")
    fsdp = env.get("ACCELERATE_USE_FSDP", "").lower() == "true"
    if fsdp and env.get("FSDP_OFFLOAD_PARAMS", "false").lower() == "true":
        raise UserError("accelerate's FSDP plugin asks for CPU offload (FSDP_OFFLOAD_PARAMS / "
                        "--fsdp_offload_params true), which specbench does not support. Launch "
                        "without it (the frozen target's layers are sharded; see "
                        "docs/distributed.md for the memory per GPU).")
    sharded = env.get("FSDP_SHARDING_STRATEGY", "FULL_SHARD").upper() not in ("NO_SHARD", "3")
    launcher = env.get("SPECBENCH_LAUNCHER", "torchrun/accelerate")
    return Launch(world, rank, local if local is not None else rank, launcher, fsdp, sharded)


_STATE: dict = {"launch": None}


def init(env=None) -> Launch:
    """Form the process group of this launch (once per process) and return the launch.
    Accelerate's FSDP plugin variables are consumed here (specbench shards with FSDP2 itself)
    so that ``Accelerator`` does not wrap the draft a second time."""
    if _STATE["launch"] is not None:
        return _STATE["launch"]
    env = os.environ if env is None else env
    launch = launch_from_env(env)
    if launch.world > 1 and not torch.distributed.is_initialized():
        for key in [k for k in env if k == "ACCELERATE_USE_FSDP" or k.startswith("FSDP_")]:
            env.pop(key)
        timeout = _int(env, TIMEOUT_ENV) or 1800
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(launch.local_rank % torch.cuda.device_count())
        try:
            torch.distributed.init_process_group(
                backend=backend, rank=launch.rank, world_size=launch.world,
                timeout=_dt.timedelta(seconds=timeout))
        except Exception as err:  # noqa: BLE001 - the store's and the backends' error types
            raise UserError(
                f"Could not form the process group of WORLD_SIZE={launch.world} processes at "
                f"{env.get('MASTER_ADDR')}:{env.get('MASTER_PORT')} within {timeout} s (rank "
                f"{launch.rank}: {type(err).__name__}: {str(err).splitlines()[0][:200]}). "
                "Start every process with the same launcher (torchrun --nproc_per_node N, "
                "accelerate launch --multi_gpu --num_processes N, or srun), check that "
                "MASTER_ADDR/MASTER_PORT are reachable and free, or unset WORLD_SIZE for a "
                f"single-process run. {TIMEOUT_ENV} sets the wait.") from None
    _STATE["launch"] = launch
    return launch


def launch() -> Launch:
    return _STATE["launch"] or launch_from_env()


def active() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


def rank() -> int:
    return torch.distributed.get_rank() if active() else 0


def is_main() -> bool:
    return rank() == 0


def broadcast(obj):
    """Rank 0's ``obj`` on every rank (a picklable value); ``obj`` itself in one process."""
    if not active():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def all_gather(obj) -> list:
    """Every rank's ``obj``, in rank order; ``[obj]`` in one process."""
    if not active():
        return [obj]
    out = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if active():
        torch.distributed.barrier()


def freeze_hydra_clock() -> None:
    """Make Hydra's ``${now:...}`` read rank 0's clock on every rank, so that the run and sweep
    directories it names (``outputs/<date>/<time>-...``) are the same directory everywhere."""
    if not active():
        return
    stamp = broadcast(_dt.datetime.now())

    class _Rank0Clock(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return stamp if tz is None else stamp.astimezone(tz)

    import hydra.core.utils as hydra_utils

    hydra_utils.datetime = _Rank0Clock


# ------------------------------------------------------------------------------- FSDP2
def mesh_for(device: torch.device):
    from torch.distributed.device_mesh import init_device_mesh

    key = f"mesh-{device.type}"
    if key not in _STATE:
        _STATE[key] = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    return _STATE[key]


def shard_target(target, device: torch.device) -> int:
    """FSDP2 over each decoder layer of the frozen target, which ``fully_shard`` moves (its
    shard) to ``device``; the embedding, final norm, rotary tables and lm_head stay whole (the
    drafts read them) and move to ``device``. Returns the number of layers sharded."""
    from torch.distributed.fsdp import fully_shard

    m = mesh_for(device)
    layers = target.decoder_layers
    for layer in layers:
        fully_shard(layer, mesh=m, reshard_after_forward=True)
    sharded = {id(t) for layer in layers for t in [*layer.parameters(), *layer.buffers()]}
    for module in target.model.modules():
        for name, t in [*module.named_parameters(recurse=False),
                        *module.named_buffers(recurse=False)]:
            if id(t) not in sharded and t.device != device:
                if isinstance(t, torch.nn.Parameter):
                    t.data = t.data.to(device)
                else:
                    module._buffers[name] = t.to(device)
    return len(layers)


def shard_module(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    from torch.distributed.fsdp import fully_shard

    return fully_shard(module, mesh=mesh_for(device))


def is_dtensor(t) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def full_tensors(state: dict) -> dict:
    """A state dict with every DTensor gathered into a whole tensor (a collective: every rank
    calls it)."""
    return {k: (v.full_tensor() if is_dtensor(v) else v) for k, v in state.items()}


def full_optimizer_state(model: torch.nn.Module, optimizer, params: list) -> dict:
    """The optimizer state of a sharded ``model`` as whole tensors, in the layout
    ``optimizer.state_dict()`` has in one process (parameters by index in ``params`` order), so
    a checkpoint is the same whatever the world size. A collective; rank 0 gets the state."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    full = get_optimizer_state_dict(model, optimizer, options=StateDictOptions(
        full_state_dict=True, cpu_offload=True))
    index = _fqn_index(model, params)
    state = {index[fqn]: v for fqn, v in full.get("state", {}).items()}
    groups = [{**g, "params": [index[f] for f in g["params"]]}
              for g in full.get("param_groups", [])]
    return {"state": state, "param_groups": groups}


def load_full_optimizer_state(model: torch.nn.Module, optimizer, params: list,
                              saved: dict) -> None:
    """The inverse of ``full_optimizer_state``: a single-process layout state (every rank holds
    it) loaded into the optimizer of a sharded ``model``."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = {i: fqn for fqn, i in _fqn_index(model, params).items()}
    full = {"state": {names[int(i)]: v for i, v in saved["state"].items()},
            "param_groups": [{**g, "params": [names[int(i)] for i in g["params"]]}
                             for g in saved["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, full, options=StateDictOptions(
        full_state_dict=True))


def _fqn_index(model: torch.nn.Module, params: list) -> dict[str, int]:
    ids = {id(p): i for i, p in enumerate(params)}
    return {name: ids[id(p)] for name, p in model.named_parameters() if id(p) in ids}
