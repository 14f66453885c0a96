"""One lossless speculative decoder (temperature 0) that measures every proposer the same way.

State: ``ids`` holds every token so far; the target's KV cache covers ``ids[:-1]`` and the last
token is pending. One step: the proposer drafts a chain or a tree of tokens; a single target forward over
[last token, draft...] (a tree gets an ancestor-only 4D attention mask and depth-based position
ids) gives the target's greedy choice after each node; the longest path whose tokens match is
accepted plus the target's own next token (the bonus), and the cache keeps exactly the accepted
positions. The output is therefore the target's greedy output,
token for token.

tau is the reference definition (EAGLE's and Spec-Bench's evaluation): the mean over verify steps
of the tokens one step commits, accepted + 1, the prefill left out, and the last step counted in
full even when EOS or the token budget cuts it (the reference counts ``accept_length + 1`` before
it looks for EOS or the budget). Plain greedy reads tau = 1. The older figure, new tokens /
target forwards with the prefill counted, stays as ``tokens_per_forward``.

Proposers implement ``start(ids, out)``, ``propose(ids) -> list[int] | Tree`` and
``accept(ids, n_new, out)``, where ``out`` is the verify forward's ``VerifyOutput`` restricted to
the newly accepted positions. A proposer with a draft KV cache may also implement
``use_verify_mode(mode, positions)``: with ``decode.verify`` static, compiled or graphs, it is
told so before ``start``, to run its own forwards with fixed shapes too (EAGLE-3 does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from specbench.config import VerifyMode


@dataclass
class VerifyOutput:
    hidden_states: tuple  # transformers' hidden_states for the accepted positions: [1, n, H] each
    side_greedy: list[int] | None = None  # the target's greedy token after each side token

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
    step_tokens: list[int] = field(default_factory=list)  # tokens each verify step committed
    # (accepted + 1, or accepted where the proposer drops the bonus), before any EOS/budget cut
    draft_nodes: list[int] = field(default_factory=list)  # draft nodes verified per step
    draft_depth: list[int] = field(default_factory=list)  # the deepest draft path per step
    draft_time_s: float = 0.0
    total_time_s: float = 0.0

    @property
    def tau(self) -> float:
        """The reference tau: mean tokens per verify step (prefill excluded); 1 with no step."""
        return sum(self.step_tokens) / len(self.step_tokens) if self.step_tokens else 1.0

    def acceptance_by_position(self) -> tuple[list[int], list[int]]:
        """Per draft position k (0 = the first drafted token): how many verify steps reached
        it (k tokens accepted before it and a draft path at least k + 1 deep) and how many of
        those accepted it. hits / reached is the conditional acceptance rate at k: how
        acceptance decays along a chain or block."""
        depth = max(self.draft_depth, default=0)
        reached, hits = [0] * depth, [0] * depth
        for acc, d in zip(self.accepted, self.draft_depth):
            for k in range(min(acc + 1, d)):
                reached[k] += 1
                hits[k] += k < acc
        return reached, hits

    @property
    def tokens_per_forward(self) -> float:
        """New tokens / target forwards, the prefill included (specbench's tau before issue 11)."""
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


PROMPT_LOOKUP_MATCHES = ("earliest", "latest")


class PromptLookup:
    """Prompt lookup decoding: match the last n-gram (n = max_ngram..1) earlier in the context
    and propose the tokens that followed it. ``match``: which earlier occurrence wins when there
    are several; "earliest" is the reference's and transformers' ``prompt_lookup_num_tokens``
    rule (the first occurrence with a continuation), "latest" the most recent one
    (specbench before issue 11)."""

    name = "prompt_lookup"

    def __init__(self, max_ngram: int = 3, num_draft: int = 10, match: str = "earliest"):
        if match not in PROMPT_LOOKUP_MATCHES:
            raise ValueError(f"decode.prompt_lookup_match={match!r}: use one of "
                             f"{', '.join(PROMPT_LOOKUP_MATCHES)}.")
        self.max_ngram, self.num_draft, self.match = max_ngram, num_draft, match

    def start(self, ids, out):
        pass

    def propose(self, ids):
        for n in range(min(self.max_ngram, len(ids) - 1), 0, -1):
            pattern = ids[-n:]
            starts = range(len(ids) - n) if self.match == "earliest" \
                else range(len(ids) - n - 1, -1, -1)
            for start in starts:  # every earlier occurrence (the last n-gram itself excluded)
                if ids[start: start + n] == pattern:
                    follow = ids[start + n: start + n + self.num_draft]
                    if follow:
                        return follow
        return []

    def accept(self, ids, n_new, out):
        pass


@dataclass
class SideBranch:
    """Extra tokens a proposer wants the target to run in the verify forward without being
    verified (Lookahead's Jacobi window). ``offsets[k]`` is token k's position relative to the
    pending last token; ``visible[k]`` is a bool row over [pending token, side tokens...] of
    what it may attend to (besides the whole cache). Their outputs go back to the proposer as
    ``VerifyOutput.side_greedy``; their cache entries are dropped; tree nodes never see them."""

    tokens: list[int]
    offsets: list[int]
    visible: torch.Tensor


@dataclass
class Tree:
    """A draft tree: ``tokens[i]`` hangs under ``parents[i]`` (-1: under the pending last
    token; otherwise an earlier index). A chain is the tree with parents [-1, 0, 1, ...]."""

    tokens: list[int]
    parents: list[int]
    side: SideBranch | None = None
    # True: an accepted path that ends at a leaf commits no bonus token (the target's token
    # after the leaf is left for the next step, as lade does for a fully matched guess)
    no_bonus_at_leaf: bool = False

    @classmethod
    def chain(cls, tokens) -> Tree:
        return cls(list(tokens), list(range(-1, len(tokens) - 1)))

    def is_chain(self) -> bool:
        return self.parents == list(range(-1, len(self.tokens) - 1))

    def depths(self) -> list[int]:
        d = []
        for p in self.parents:
            d.append(1 if p < 0 else d[p] + 1)
        return d

    def ancestor_mask(self) -> torch.Tensor:
        """[n+1, n+1] bool over [root, nodes...]: each entry sees itself and its ancestors."""
        n = len(self.tokens)
        m = torch.zeros(n + 1, n + 1, dtype=torch.bool)
        m[:, 0] = True
        for i, p in enumerate(self.parents):
            m[i + 1, i + 1] = True
            if p >= 0:
                m[i + 1] |= m[p + 1]
        return m


def _cache_keyword(model) -> str:
    """transformers 5 renamed ``past_key_values`` to ``cache``; use whichever forward takes."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters \
        else "past_key_values"


def _target_forward(model, input_ids, cache, position_ids, attention_mask=None):
    return model(input_ids=input_ids, use_cache=True, position_ids=position_ids,
                 attention_mask=attention_mask, output_hidden_states=True,
                 **{_cache_keyword(model): cache})


def tree_allowed(tree: Tree) -> torch.Tensor:
    """[q, q] bool over [root, nodes, side tokens]: which new tokens each one sees (its
    ancestors and itself, or the side branch's own visibility rows)."""
    n = len(tree.tokens) + 1
    s = len(tree.side.tokens) if tree.side else 0
    new = torch.zeros(n + s, n + s, dtype=torch.bool)
    new[:n, :n] = tree.ancestor_mask()
    if s:
        new[n:, 0] = tree.side.visible[:, 0]
        new[n:, n:] = tree.side.visible[:, 1:]
    return new


def tree_attention_mask(tree: Tree, n_cached: int, dtype) -> torch.Tensor:
    """The 4D additive mask [1, 1, q, n_cached+q] over [root, nodes, side tokens]: every
    cached position, plus what ``tree_allowed`` lets each new token see."""
    new = tree_allowed(tree)
    allowed = torch.cat([torch.ones(new.shape[0], n_cached, dtype=torch.bool), new], dim=1)
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask[~allowed] = torch.finfo(dtype).min
    return mask[None, None]


def keep_cache_positions(cache, n_cached: int, keep: list[int]) -> None:
    """Keep the first ``n_cached`` entries plus the new entries at offsets ``keep``."""
    total = cache.get_seq_length()
    if keep == list(range(len(keep))):
        extra = total - n_cached - len(keep)
        if extra:
            cache.crop(-extra)
        return
    index = torch.tensor(list(range(n_cached)) + [n_cached + k for k in keep])
    for layer in cache.layers:
        layer.keys = layer.keys.index_select(2, index.to(layer.keys.device))
        layer.values = layer.values.index_select(2, index.to(layer.values.device))


def _fit_budget(tree: Tree, room: int) -> Tree:
    """``tree`` without the nodes deeper than ``room`` (never draft past the token budget)."""
    if len(tree.tokens) <= room:
        return tree
    keep_nodes = [i for i, d in enumerate(tree.depths()) if d <= room]
    remap = {old: new for new, old in enumerate(keep_nodes)}
    return Tree([tree.tokens[i] for i in keep_nodes],
                [remap.get(tree.parents[i], -1) for i in keep_nodes], tree.side,
                tree.no_bonus_at_leaf)


def _longest_path(tree: Tree, greedy: list[int]) -> tuple[list[int], bool]:
    """The accepted path (indices into [root, nodes...], root left out) and whether it ends at
    a leaf."""
    children: dict[int, list[int]] = {}
    for i, p in enumerate(tree.parents):
        children.setdefault(p + 1, []).append(i + 1)
    path, cur = [], 0
    while True:
        nxt = next((c for c in children.get(cur, []) if tree.tokens[c - 1] == greedy[cur]), None)
        if nxt is None:
            return path, bool(path) and cur not in children
        path.append(nxt)
        cur = nxt


VERIFY_MODES = tuple(m.value for m in VerifyMode)


class DynamicVerifier:
    """The target's forwards over a growing ``DynamicCache``, each at its own length."""

    def __init__(self, model, device):
        from transformers import DynamicCache

        self.model, self.device, self.cache = model, device, DynamicCache()

    def prefill(self, prompt_ids: list[int]):
        prompt = torch.tensor([prompt_ids], device=self.device)
        return _target_forward(self.model, prompt, self.cache,
                               torch.arange(len(prompt_ids), device=self.device)[None])

    def verify(self, n_cached: int, tokens: list[int], positions: list[int], tree: Tree):
        mask = None if tree.is_chain() and tree.side is None else tree_attention_mask(
            tree, n_cached, self.model.dtype).to(self.device)
        out = _target_forward(self.model, torch.tensor([tokens], device=self.device),
                              self.cache, torch.tensor([positions], device=self.device), mask)
        return out.logits[0], out.hidden_states

    def keep(self, n_cached: int, keep: list[int]) -> None:
        keep_cache_positions(self.cache, n_cached, keep)


_STATIC: dict = {}  # mode -> the StaticVerifier reused across prompts (of one model at a time)


def make_verifier(model, device, mode: str, positions_needed: int):
    """A verifier for one prompt: ``dynamic``, or a ``StaticVerifier`` (kept across prompts,
    so a compiled or captured forward is built once) with room for ``positions_needed``."""
    if mode == "dynamic":
        return DynamicVerifier(model, device)
    from specbench.static_verify import BUCKETS, StaticVerifier

    need = positions_needed + 2 * BUCKETS[-1]
    sv = _STATIC.get(mode)
    if sv is None or sv.max_len < need or sv.model is not model:
        sv = _STATIC[mode] = StaticVerifier(model, device, -(-need // 512) * 512, mode)
    return sv


def _verify(verifier, ids: list[int], tree: Tree):
    """One target forward over [pending token, tree nodes, side tokens]."""
    n_cached = len(ids) - 1
    side = tree.side
    tokens = [ids[-1], *tree.tokens, *(side.tokens if side else [])]
    positions = [n_cached + d for d in [0, *tree.depths(), *(side.offsets if side else [])]]
    return verifier.verify(n_cached, tokens, positions, tree)


@torch.no_grad()
def speculative_generate(target, proposer, prompt_ids: list[int], max_new_tokens: int,
                         eos_ids: set[int], verify: str = "dynamic") -> GenerationResult:
    """Decode ``prompt_ids`` with ``proposer`` (``verify``: one of ``VERIFY_MODES``, how the
    target's forwards run; every mode is lossless, the static ones with fixed shapes)."""
    device = target.device
    t0 = time.perf_counter()
    verifier = make_verifier(target.model, device, verify, len(prompt_ids) + max_new_tokens)
    out = verifier.prefill(prompt_ids)
    if verify != "dynamic" and hasattr(proposer, "use_verify_mode"):
        proposer.use_verify_mode(verify, len(prompt_ids) + max_new_tokens)
    ids = list(prompt_ids) + [int(out.logits[0, -1].argmax())]
    proposer.start(ids, VerifyOutput(out.hidden_states))
    result = GenerationResult(tokens=[ids[-1]], target_forwards=1)  # the prefill counts
    draft_time = 0.0
    while len(result.tokens) < max_new_tokens and ids[-1] not in eos_ids:
        t_draft = time.perf_counter()
        draft = proposer.propose(ids)
        tree = draft if isinstance(draft, Tree) else Tree.chain([int(t) for t in draft])
        tree = _fit_budget(tree, max_new_tokens - len(result.tokens))
        draft_time += time.perf_counter() - t_draft
        n_cached = len(ids) - 1
        logits, hidden = _verify(verifier, ids, tree)
        result.target_forwards += 1
        greedy = logits.argmax(-1).tolist()
        side_greedy = greedy[len(tree.tokens) + 1:] if tree.side else None
        path, at_leaf = _longest_path(tree, greedy)
        new = [tree.tokens[j - 1] for j in path]
        keep = [0, *path]
        if at_leaf and tree.no_bonus_at_leaf:
            keep = keep[:-1]  # the leaf becomes the pending token: its entry is recomputed
        else:
            new.append(greedy[path[-1] if path else 0])
        verifier.keep(n_cached, keep)
        result.accepted.append(len(path))
        result.step_tokens.append(len(new))
        result.draft_nodes.append(len(tree.tokens))
        result.draft_depth.append(max(tree.depths(), default=0))
        for i, tok in enumerate(new):  # stop at EOS inside the accepted run
            if tok in eos_ids:
                new = new[: i + 1]
                break
        new = new[: max_new_tokens - len(result.tokens)]
        ids.extend(new)
        result.tokens.extend(new)
        index = torch.tensor(keep, device=device)
        kept = VerifyOutput(tuple(h.index_select(1, index) for h in hidden), side_greedy)
        t_draft = time.perf_counter()
        proposer.accept(ids, len(new), kept)
        draft_time += time.perf_counter() - t_draft
    result.draft_time_s = draft_time
    result.total_time_s = time.perf_counter() - t0
    return result
