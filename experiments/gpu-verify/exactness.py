"""The GPU check's exactness part (issue 15): on a tiny random Llama in fp32, every proposer
decodes with ``decode.verify=MODE`` (graphs on a GPU; static or compiled as the CPU twin) and
must give plain greedy's tokens and the same accepted lengths as the dynamic path.

    python experiments/gpu-verify/exactness.py --mode graphs      # on a GPU
    python experiments/gpu-verify/exactness.py --mode static      # the CPU twin
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from omegaconf import OmegaConf

from specbench.algorithms.eagle3.config import Eagle3Config
from specbench.algorithms.eagle3.model import Eagle3
from specbench.algorithms.medusa.config import MedusaConfig
from specbench.algorithms.medusa.model import Medusa
from specbench.config import compose
from specbench.decoding import Autoregressive, PromptLookup, speculative_generate
from specbench.target import load_target


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="graphs", choices=["static", "compiled", "graphs"])
    ap.add_argument("--tokens", type=int, default=40)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    target = load_target(compose(["model=tiny-llama"]).model, device=device)
    torch.manual_seed(0)
    v, h = target.config.vocab_size, target.config.hidden_size
    medusa = Medusa(OmegaConf.structured(MedusaConfig(num_heads=3)), h, v, target.lm_head.weight)
    eagle = Eagle3(OmegaConf.structured(Eagle3Config(ttt_length=4, aux_layers=[0, 1, 2])),
                   target.config, target.embed_tokens.weight, target.lm_head.weight,
                   torch.arange(v))
    with torch.no_grad():
        for p in list(medusa.parameters()) + list(eagle.parameters()):
            p.add_(0.05 * torch.randn_like(p))
    medusa, eagle = medusa.to(device).eval(), eagle.to(device).eval()
    methods = {"greedy": Autoregressive, "prompt_lookup": PromptLookup,
               "medusa_tree": lambda: medusa.make_proposer("tree"),
               "eagle3_chain": lambda: eagle.make_proposer("chain"),
               "eagle3_tree": lambda: eagle.make_proposer("tree")}
    g = torch.Generator().manual_seed(3)
    rows, ok = [], True
    for trial in range(3):
        prompt = torch.randint(0, 256, (9 + trial,), generator=g).tolist()
        ref = speculative_generate(target, Autoregressive(), prompt, args.tokens, set())
        for name, make in methods.items():
            dyn = speculative_generate(target, make(), prompt, args.tokens, set())
            fix = speculative_generate(target, make(), prompt, args.tokens, set(),
                                       verify=args.mode)
            same = fix.tokens == ref.tokens == dyn.tokens and fix.accepted == dyn.accepted
            ok &= same
            rows.append({"prompt": trial, "method": name, "exact": same,
                         "accepted": sum(fix.accepted), "steps": len(fix.accepted)})
    print(json.dumps({"device": device, "mode": args.mode, "all_exact": ok, "rows": rows}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
