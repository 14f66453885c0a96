"""One lossless speculative decoder (temperature 0) that measures every proposer the same way.

State: ``ids`` holds every token so far; the target's KV cache covers ``ids[:-1]`` and the last
token is pending. One step: the proposer drafts k tokens; a single target forward over
[last token, draft...] gives the target's greedy choice after each prefix; the longest matching
prefix is accepted plus the target's own next token (the bonus), and the cache is cropped to
exactly the accepted positions. The output is therefore the target's greedy output,
token for token; ``speculative_generate`` counts target forwards, so tau = new tokens / forwards.

Proposers implement ``start(ids, out)``, ``propose(ids) -> list[int]`` and
``accept(ids, n_new, out)``, where ``out`` is the verify forward's ``VerifyOutput`` restricted to
the newly accepted positions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch


@dataclass
class VerifyOutput:
    hidden_states: tuple  # transformers' hidden_states for the accepted positions: [1, n, H] each

    def layer_output(self, i: int) -> torch.Tensor:
        return self.hidden_states[i + 1]

    @property
    def final_hidden(self) -> torch.Tensor:
        return self.hidden_states[-1]


@dataclass
class GenerationResult:
    tokens: list[int]  # generated tokens (prompt excluded)
    target_forwards: int  # target forwards, the prefill included (so greedy has tau = 1)
    accepted: list[int] = field(default_factory=list)  # draft tokens accepted per step
    draft_time_s: float = 0.0
    total_time_s: float = 0.0

    @property
    def tau(self) -> float:
        return len(self.tokens) / max(1, self.target_forwards)


class Autoregressive:
    """Proposes nothing: plain greedy decoding through the same harness (tau = 1)."""

    name = "autoregressive"

    def start(self, ids, out):
        pass

    def propose(self, ids):
        return []

    def accept(self, ids, n_new, out):
        pass


class PromptLookup:
    """Prompt lookup decoding: match the last n-gram (n = max_ngram..1) earlier in the context
    and propose the tokens that followed it."""

    name = "prompt_lookup"

    def __init__(self, max_ngram: int = 3, num_draft: int = 10):
        self.max_ngram, self.num_draft = max_ngram, num_draft

    def start(self, ids, out):
        pass

    def propose(self, ids):
        for n in range(min(self.max_ngram, len(ids) - 1), 0, -1):
            pattern = ids[-n:]
            for start in range(len(ids) - n - 1, -1, -1):  # latest earlier match first
                if ids[start: start + n] == pattern:
                    follow = ids[start + n: start + n + self.num_draft]
                    if follow:
                        return follow
        return []

    def accept(self, ids, n_new, out):
        pass


def _target_forward(model, input_ids, cache, position_start: int):
    positions = torch.arange(position_start, position_start + input_ids.shape[1],
                             device=input_ids.device)[None]
    out = model(input_ids=input_ids, past_key_values=cache, use_cache=True,
                position_ids=positions, output_hidden_states=True)
    return out


@torch.no_grad()
def speculative_generate(target, proposer, prompt_ids: list[int], max_new_tokens: int,
                         eos_ids: set[int]) -> GenerationResult:
    from transformers import DynamicCache

    model = target.model
    device = target.device
    t0 = time.perf_counter()
    cache = DynamicCache()
    prompt = torch.tensor([prompt_ids], device=device)
    out = _target_forward(model, prompt, cache, 0)
    ids = list(prompt_ids) + [int(out.logits[0, -1].argmax())]
    proposer.start(ids, VerifyOutput(out.hidden_states))
    result = GenerationResult(tokens=[ids[-1]], target_forwards=1)  # the prefill counts
    draft_time = 0.0
    while len(result.tokens) < max_new_tokens and ids[-1] not in eos_ids:
        t_draft = time.perf_counter()
        draft = [int(t) for t in proposer.propose(ids)]
        draft = draft[: max_new_tokens - len(result.tokens)]
        draft_time += time.perf_counter() - t_draft
        n_cached = len(ids) - 1
        inputs = torch.tensor([[ids[-1], *draft]], device=device)
        out = _target_forward(model, inputs, cache, n_cached)
        result.target_forwards += 1
        greedy = out.logits[0].argmax(-1).tolist()
        m = 0
        while m < len(draft) and draft[m] == greedy[m]:
            m += 1
        new = draft[:m] + [greedy[m]]
        extra = len(draft) - m  # keep the last token and the m accepted drafts
        if extra:
            cache.crop(-extra)
        # stop at EOS inside the accepted run
        for i, tok in enumerate(new):
            if tok in eos_ids:
                new = new[: i + 1]
                break
        new = new[: max_new_tokens - len(result.tokens)]
        ids.extend(new)
        result.tokens.extend(new)
        result.accepted.append(m)
        kept = VerifyOutput(tuple(h[:, : m + 1] for h in out.hidden_states))
        t_draft = time.perf_counter()
        proposer.accept(ids, len(new), kept)
        draft_time += time.perf_counter() - t_draft
    result.draft_time_s = draft_time
    result.total_time_s = time.perf_counter() - t0
    return result
