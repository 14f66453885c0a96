"""Rendering conversations with the target's chat template, and the assistant-only loss mask.

The mask is found without knowing the template: for assistant turn i, the text rendered for
``messages[:i]`` with the generation prompt ends where the answer starts, and the text rendered
for ``messages[:i+1]`` (trailing whitespace removed) ends where it stops, end-of-turn token
included. Tokens whose characters lie inside such a span are trained on; everything else
(system prompt, user turns, role headers) is context only.
"""

from __future__ import annotations

from dataclasses import dataclass

from specbench.errors import UserError


@dataclass
class TokenizedRow:
    input_ids: list[int]
    loss_mask: list[int]  # 1 where the token belongs to an assistant turn


def _render(tokenizer, messages, add_generation_prompt=False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def assistant_spans(tokenizer, messages) -> tuple[str, list[tuple[int, int]]]:
    text = _render(tokenizer, messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start_text = _render(tokenizer, messages[:i], add_generation_prompt=True)
        end_text = _render(tokenizer, messages[: i + 1]).rstrip()
        if not (text.startswith(start_text) and text.startswith(end_text)):
            raise UserError(
                "The chat template does not render conversations incrementally (a rendered "
                "prefix is not a prefix of the full text), so the assistant loss mask cannot be "
                "located. Use a model whose chat template appends turns, or pre-render the data.")
        spans.append((len(start_text), len(end_text)))
    return text, spans


def tokenize_conversation(tokenizer, messages, max_length: int) -> TokenizedRow:
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    mask = [0] * len(ids)
    for j, (a, b) in enumerate(offsets):
        if b > a and any(s <= a and b <= e for s, e in spans):
            mask[j] = 1
    return TokenizedRow(ids[:max_length], mask[:max_length])
