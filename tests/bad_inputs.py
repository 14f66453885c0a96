"""The bad-input campaign: every setting a user can get wrong, with the message it must give.

Each ``Row`` is one input. ``tests/test_errors_doc.py`` runs every row (and asserts a clear
message naming the setting, caught at ``when``, in under 10 s) and writes ``docs/errors.md``
from the same list:

    .venv/bin/python -m tests.test_errors_doc --write

Kinds of row:
- ``config``: ``specbench.config.compose(args)`` then ``specbench.__main__.preflight`` (what
  ``python -m specbench`` checks before loading a model);
- ``run``: the whole ``python -m specbench`` flow in-process (``__main__._run``: preflight,
  train, export, evaluate) on the tiny random target with a 48-row conversation file
  (``BASE_RUN`` below, then the row's overrides);
- ``cli``: ``specbench.<tool>.main(args)`` in-process (stderr captured);
- ``app``: ``python -m specbench <args>`` in a subprocess (Hydra's own error printing).

Placeholders in ``args``: ``{tmp}`` (the row's own empty directory), ``{convs}`` (the 48-row
conversation file), ``{run}`` (a copy of a completed tiny Medusa run), ``{partial}`` (a copy of
a tiny Medusa run interrupted after step 1 of 2, with a checkpoint), ``{eagle_run}`` (a copy of
a completed tiny EAGLE-3 run), ``{local}`` (a tiny model saved by transformers),
``{local_notok}`` (the same without tokenizer files), ``{local_noconfig}`` (without
config.json). ``files`` names files to create in ``{tmp}`` first (str: text, bytes: binary,
None: a directory).

``issue``: None for a row that gives a clear message; else ``"<kind>: <what happens>"`` with
kind one of traceback, misleading, late, silent (the row's test is an expected failure until
src/ is fixed). ``when``: where a clear message is (or should be) given: compose, preflight,
run start (before the target loads), target load, after target load, CLI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

ISSUE_KINDS = ("traceback", "misleading", "late", "silent")


@dataclass
class Row:
    area: str
    kind: str  # config | run | cli | app
    args: list[str]
    expect: str  # a substring of the message (names the setting)
    when: str
    label: str = ""  # what the doc shows as the input (default: the args)
    tool: str = ""  # cli: the module under specbench
    files: dict = field(default_factory=dict)
    issue: str | None = None
    ok: bool = False  # --help rows: must exit 0 (not a bad input)
    env: dict = field(default_factory=dict)  # environment for the row
    prepare: str = ""  # a named extra setup step (see test_errors_doc._prepared)
    drop: list = field(default_factory=list)  # run rows: base overrides left out
    limit_s: float = 10.0  # the time it must take at most
    warn: bool = False  # a warning naming the setting, and the run goes on, is the right answer

    @property
    def input(self) -> str:
        if self.label:
            return self.label
        head = {"cli": f"python -m specbench.{self.tool} ", "app": "python -m specbench "}
        return (head.get(self.kind, "") + " ".join(self.args)).strip()

    @property
    def id(self) -> str:
        return f"{self.area}: {self.input}"

    @property
    def status(self) -> str:
        return "ok (help)" if self.ok else (self.issue.split(":")[0] if self.issue else "clear")


def C(area, args, expect, when="preflight", **kw) -> Row:  # noqa: N802 - a table of rows
    return Row(area, "config", args, expect, when, **kw)


def R(area, args, expect, when="after target load", **kw) -> Row:  # noqa: N802
    return Row(area, "run", args, expect, when, **kw)


def T(tool, args, expect, **kw) -> Row:  # noqa: N802
    return Row(f"CLI {tool}", "cli", args, expect, "CLI", tool=tool, **kw)


TINY = ["model=tiny-llama"]
E3 = ["algorithm=eagle3"]
DF = ["algorithm=dflash"]
CONV_ROW = {"messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello there"}]}


def lines(*rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


GOOD = lines(*[CONV_ROW] * 3)
QUESTION = lines({"question_id": 1, "category": "x", "turns": ["Say hi."]})

ROWS: list[Row] = [
    # ------------------------------------------------------------ Hydra: groups and overrides
    C("hydra overrides", ["model=nope"], "model", "compose"),
    C("hydra overrides", ["algorithm=nope"], "algorithm", "compose"),
    C("hydra overrides", ["data=nope"], "data", "compose"),
    C("hydra overrides", ["trainer=nope"], "trainer", "compose"),
    C("hydra overrides", ["tracker=nope"], "tracker", "compose"),
    C("hydra overrides", ["decode=nope"], "decode", "compose"),
    C("hydra overrides", ["cache=nope"], "cache", "compose"),
    C("hydra overrides", ["+experiment=nope"], "experiment", "compose"),
    C("hydra overrides", ["+nope=x"], "nope is not a setting"),
    C("hydra overrides", ["nope=1"], "nope", "compose"),
    C("hydra overrides", ["+trainer.typo=1"], "trainer.typo is not a setting"),
    C("hydra overrides", ["trainer.typo=1"], "trainer.typo", "compose"),
    C("hydra overrides", ["+typo=1"], "typo is not a setting"),
    C("hydra overrides", ["+model.arch.typo=1"], "model.arch.typo is not a setting"),
    C("hydra overrides", ["+algorithm.typo=1"], "algorithm.typo is not a setting"),
    C("hydra overrides", ["+decode.lookahead.typo=1"], "decode.lookahead.typo is not a setting"),
    C("hydra overrides", ["+cache.typo=1"], "cache.typo is not a setting"),
    C("hydra overrides", ["+tracker.typo=1"], "tracker.typo is not a setting"),
    C("hydra overrides", ["trainer.lr"], "trainer.lr", "compose"),
    C("hydra overrides", ["trainer.lr=="], "trainer.lr", "compose"),
    C("hydra overrides", ["~model"], "model"),
    R("hydra overrides", ["data=jsonl"], "data.path", drop=["data.path"],
      label="data=jsonl (data.path not given)"),
    C("hydra overrides", E3 + ["+algorithm.num_heads=3"], "algorithm.num_heads is not a setting"),
    # ------------------------------------------------------------ wrong types
    C("types", ["trainer.lr=abc"], "trainer.lr", "compose"),
    C("types", ["trainer.lr=null"], "trainer.lr", "compose"),
    C("types", ["trainer.epochs=1.5"], "trainer.epochs", "compose"),
    C("types", ["trainer.micro_batch_size=abc"], "trainer.micro_batch_size", "compose"),
    C("types", ["trainer.seed=1.5"], "trainer.seed", "compose"),
    C("types", ["trainer.resume=maybe"], "trainer.resume", "compose"),
    C("types", ["trainer.precision=fp8"], "trainer.precision", "compose"),
    C("types", ["trainer.device=tpu"], "trainer.device", "compose"),
    C("types", ["model.dtype=float64"], "model.dtype", "compose"),
    C("types", ["model.source=s3"], "model.source", "compose"),
    C("types", ["data.bad_rows=ignore"], "data.bad_rows", "compose"),
    C("types", ["data.eval_rows=many"], "data.eval_rows", "compose"),
    C("types", ["tracker.mode=cloud"], "tracker.mode", "compose"),
    C("types", ["tracker.tags=abc"], "tracker.tags", "compose"),
    C("types", ["cache.layers=all"], "cache.layers", "compose"),
    C("types", ["cache.enabled=perhaps"], "cache.enabled", "compose"),
    C("types", ["decode.dtype=int8"], "decode.dtype", "compose"),
    C("types", ["decode.num_prompts=four"], "decode.num_prompts", "compose"),
    C("types", ["decode.verify=fast"], "decode.verify", "compose"),
    C("decode", ["decode.verify=graphs"], "decode.verify=graphs", "preflight",
      label="decode.verify=graphs (on a machine without CUDA)"),
    C("types", ["force=maybe"], "force", "compose"),
    C("types", ["export=vllm"], "export", "compose"),
    C("types", ["algorithm.num_heads=abc"], "algorithm.num_heads", "compose"),
    C("types", ["algorithm.lm_head=both"], "algorithm.lm_head", "compose"),
    C("types", ["algorithm.labels=teacher"], "algorithm.labels", "compose"),
    C("types", ["algorithm.tree=bogus"], "algorithm.tree", "compose"),
    C("types", ["algorithm.tree_choices=abc"], "algorithm.tree_choices", "compose"),
    C("types", ["algorithm.tree_choices=[0,1]"], "algorithm.tree_choices", "compose"),
    C("types", E3 + ["algorithm.attention=sdpa"], "algorithm.attention", "compose"),
    C("types", E3 + ["algorithm.aux_layers=abc"], "algorithm.aux_layers", "compose"),
    # ------------------------------------------------------------ trainer ranges and conflicts
    C("trainer", ["trainer.lr=0"], "trainer.lr=0.0 must be > 0"),
    C("trainer", ["trainer.lr=-1e-3"], "trainer.lr=-0.001 must be > 0"),
    C("trainer", ["trainer.lr=nan"], "trainer.lr=nan must be > 0"),
    C("trainer", ["trainer.lr=inf"], "trainer.lr=inf must be > 0"),
    C("trainer", ["trainer.weight_decay=-0.1"], "trainer.weight_decay=-0.1 must be >= 0"),
    C("trainer", ["trainer.adam_beta1=1.0"], "trainer.adam_beta1=1.0 must be in [0, 1)"),
    C("trainer", ["trainer.adam_beta2=-0.1"], "trainer.adam_beta2=-0.1 must be in [0, 1)"),
    C("trainer", ["trainer.adam_eps=0"], "trainer.adam_eps=0.0 must be > 0"),
    C("trainer", ["trainer.warmup_ratio=1.5"], "trainer.warmup_ratio=1.5 must be in [0, 1]"),
    C("trainer", ["trainer.warmup_ratio=-0.1"], "trainer.warmup_ratio=-0.1 must be in [0, 1]"),
    C("trainer", ["trainer.epochs=0"], "trainer.epochs=0 must be at least 1"),
    C("trainer", ["trainer.epochs=-1"], "trainer.epochs=-1 must be at least 1"),
    C("trainer", ["trainer.max_steps=0"], "trainer.max_steps=0 must be at least 1"),
    C("trainer", ["trainer.micro_batch_size=0"], "trainer.micro_batch_size=0 must be at least 1"),
    C("trainer", ["trainer.grad_accum=0"], "trainer.grad_accum=0 must be at least 1"),
    C("trainer", ["trainer.global_batch_size=0"], "trainer.global_batch_size=0 must be at least"),
    C("trainer", ["trainer.global_batch_size=6", "trainer.micro_batch_size=4"],
      "trainer.global_batch_size=6 is not divisible by trainer.micro_batch_size=4"),
    C("trainer", ["trainer.global_batch_size=16", "trainer.grad_accum=2"], "trainer.grad_accum"),
    C("trainer", ["trainer.max_grad_norm=0"], "trainer.max_grad_norm=0.0 must be > 0"),
    C("trainer", ["trainer.max_grad_norm=-1"], "trainer.max_grad_norm=-1.0 must be > 0"),
    C("trainer", ["trainer.max_length=0"], "trainer.max_length=0 must be at least 1"),
    C("trainer", ["trainer.eval_every=0"], "trainer.eval_every=0 must be at least 1"),
    C("trainer", ["trainer.log_every=0"], "trainer.log_every=0 must be at least 1"),
    C("trainer", ["trainer.checkpoint_every=-1"], "trainer.checkpoint_every=-1 must be at least"),
    C("trainer", ["trainer.keep_checkpoints=0"], "trainer.keep_checkpoints=0 must be at least"),
    R("trainer", ["trainer.max_length=4"], "trainer.max_length"),
    R("trainer", ["trainer.device=cuda"], "trainer.device", "run start"),
    # ------------------------------------------------------------ model
    C("model", ["model.arch.hidden_size=0"], "model.arch.hidden_size=0 must be at least 1"),
    C("model", ["model.arch.vocab_size=-5"], "model.arch.vocab_size=-5 must be at least 1"),
    C("model", ["model.arch.rope_theta=0"], "model.arch.rope_theta=0.0 must be > 0"),
    C("model", ["model.arch.rms_norm_eps=-1"], "model.arch.rms_norm_eps=-1.0 must be > 0"),
    R("model", TINY + ["model.arch.num_attention_heads=3"], "model.arch.num_attention_heads",
      "preflight"),
    R("model", TINY + ["model.arch.num_key_value_heads=3"], "model.arch.num_key_value_heads",
      "preflight"),
    R("model", TINY + ["model.arch.model_type=gpt2"], "model.arch.model_type", "target load"),
    R("model", ["model.source=hub", "model.hub_id=null"], "model.hub_id", "target load"),
    R("model", ["model.source=hub", "model.hub_id=nope/nope"], "'nope/nope'", "target load",
      label="model.source=hub model.hub_id=nope/nope (offline)"),
    R("model", ["model=llama3-8b"], "model", "target load",
      label="model=llama3-8b (hub model, offline)"),
    R("model", ["model.source=local", "model.path=null"], "model.path", "target load"),
    R("model", ["model.source=local", "model.path={tmp}/missing"], "model.path", "target load",
      label="model.source=local model.path=<missing dir>"),
    R("model", ["model.source=local", "model.path={tmp}/empty"], "model.path", "target load",
      files={"empty": None}, label="model.source=local model.path=<empty dir>"),
    R("model", ["model.source=local", "model.path={tmp}/f.bin"], "model.path", "target load",
      files={"f.bin": b"\x00\x01"}, label="model.source=local model.path=<a file>"),
    R("model", ["model.source=local", "model.path={local_notok}"], "tokenizer", "target load",
      label="model.source=local model.path=<dir without tokenizer>"),
    R("model", ["model.source=local", "model.path={local_noconfig}"], "config.json",
      "target load", label="model.source=local model.path=<dir without config.json>"),
    R("model", ["model.source=local", "model.path={local}", "model.arch.hidden_size=128"],
      "model.arch.hidden_size", "target load",
      label="model.source=local model.path=<tiny model> model.arch.hidden_size=128 (wrong)"),
    R("model", ["model.source=local", "model.path={local}", "model=tiny-qwen2"],
      "model_type", "target load",
      label="model=tiny-qwen2 model.source=local model.path=<a llama model>"),
    R("model", TINY + ["model.path={local}"], "model.source", "preflight",
      label="model=tiny-llama model.path=<a model dir> (model.source left at random)"),
    # ------------------------------------------------------------ data
    C("data", ["data.eval_rows=-1"], "data.eval_rows=-1 must be at least 0"),
    C("data", ["data.max_rows=0"], "data.max_rows=0 must be at least 1"),
    C("data", ["data.max_rows=10"], "data.eval_rows=16 holds out all of the data.max_rows=10"),
    R("data", ["data.path={tmp}/missing.jsonl"], "data.path", "after target load",
      label="data.path=<missing file>"),
    R("data", ["data.path={tmp}"], "data.path", label="data.path=<a directory>"),
    R("data", ["data.path={tmp}/e.jsonl"], "is empty", files={"e.jsonl": ""},
      label="data.path=<empty file>"),
    R("data", ["data.path={tmp}/b.jsonl"], "binary", files={"b.jsonl": b"\x00\xff\x10" * 50},
      label="data.path=<binary file>"),
    R("data", ["data.path={tmp}/l1.jsonl"], "undecodable bytes", files={"l1.jsonl": "caf\xe9".encode(
        "latin-1") + b"\n"}, label="data.path=<latin-1 text>"),
    R("data", ["data.path=null"], "data.path", label="data.path=null"),
    R("data", ["data.path={tmp}/a.jsonl"], "not a JSON object", files={"a.jsonl": "[1, 2, 3]\n"},
      label="data.path=<a JSON array of numbers>"),
    R("data", ["data.path={tmp}/o.json"], "no 'messages'", files={"o.json": '{"a": 1}'},
      label="data.path=<.json holding an object>"),
    R("data", ["data.path={tmp}/cut.jsonl", "data.bad_rows=error"], "line 4",
      files={"cut.jsonl": GOOD + '{"messages": [{"role": "user", "con'},
      label="data.path=<last line cut off> data.bad_rows=error"),
    R("data", ["data.path={tmp}/mid.jsonl", "data.bad_rows=error"], "line 2",
      files={"mid.jsonl": lines(CONV_ROW) + '{"messages": [\n' + GOOD},
      label="data.path=<a broken line in the middle> data.bad_rows=error"),
    R("data", ["data.path={tmp}/nomsg.jsonl"], "No usable conversations",
      files={"nomsg.jsonl": lines({"text": "hello"}, {"text": "bye"})},
      label="data.path=<rows without messages>"),
    R("data", ["data.path={tmp}/noasst.jsonl"], "assistant",
      files={"noasst.jsonl": lines(*[{"messages": [{"role": "user", "content": "hi"}]}] * 20)},
      label="data.path=<rows without an assistant turn>"),
    R("data", ["data.path={tmp}/role.jsonl"], "role",
      files={"role.jsonl": lines(*[{"messages": [{"role": "robot", "content": "hi"},
                                                 {"role": "assistant", "content": "x"}]}] * 20)},
      label="data.path=<rows with an unknown role>"),
    R("data", ["data.path={tmp}/int.jsonl"], "string",
      files={"int.jsonl": lines(*[{"messages": [{"role": "user", "content": 5},
                                                {"role": "assistant", "content": 6}]}] * 20)},
      label="data.path=<rows whose content is a number>"),
    R("data", ["data.path={tmp}/few.jsonl"], "data.eval_rows", files={"few.jsonl": GOOD},
      label="data.path=<3 rows> (data.eval_rows=8)"),
    R("data", ["data.eval_rows=48"], "data.eval_rows", label="data.eval_rows=48 (48 rows)"),
    R("data", ["data.hub_id=nope/nope"], "data.path and data.hub_id"),
    R("data", ["data.path=null", "data.hub_id=nope/nope"], "'nope/nope'",
      label="data.path=null data.hub_id=nope/nope (offline)"),
    R("data", ["data.split=test"], "data.split", "preflight",
      label="data.split=test with a local data.path"),
    R("data", ["data=ultrachat", "data.eval_rows=8"], "HuggingFaceH4/ultrachat_200k",
      drop=["data.path"], label="data=ultrachat (offline)"),
    R("data", ["data.path={tmp}/bad.jsonl", "data.bad_rows=error"], "line 1",
      files={"bad.jsonl": lines({"text": "x"}) + GOOD},
      label="data.path=<first row malformed> data.bad_rows=error"),
    # ------------------------------------------------------------ Medusa settings
    C("algorithm=medusa", ["algorithm.num_heads=0"], "algorithm.num_heads=0 must be at least 1"),
    C("algorithm=medusa", ["algorithm.num_heads=-2"], "algorithm.num_heads=-2 must be at least"),
    C("algorithm=medusa", ["algorithm.num_layers=-1"], "algorithm.num_layers=-1 must be at least"),
    C("algorithm=medusa", ["algorithm.loss_decay=0"], "algorithm.loss_decay=0.0 must be > 0"),
    C("algorithm=medusa", ["algorithm.loss_decay=nan"], "algorithm.loss_decay=nan must be > 0"),
    C("algorithm=medusa", ["algorithm.tree_size=0"], "algorithm.tree_size=0 must be at least 1"),
    C("algorithm=medusa", ["algorithm.tree=measured", "algorithm.tree_choices=[[0]]"],
      "algorithm.tree=measured builds the tree from measured accuracies"),
    R("algorithm=medusa", ["algorithm.tree_choices=[[]]"], "algorithm.tree_choices"),
    R("algorithm=medusa", ["algorithm.tree_choices=[[1,0]]"], "algorithm.tree_choices"),
    R("algorithm=medusa", ["algorithm.tree_choices=[[0],[0]]"], "algorithm.tree_choices"),
    R("algorithm=medusa", ["algorithm.tree_choices=[[-1]]"], "algorithm.tree_choices"),
    R("algorithm=medusa", ["algorithm.tree_choices=[]"], "algorithm.tree_choices"),
    R("algorithm=medusa", ["algorithm.num_heads=2", "algorithm.tree_choices=[[0],[0,0],[0,0,0]]"],
      "algorithm.tree_choices"),
    R("algorithm=medusa", ["algorithm.tree_choices=[[500]]", "decode.enabled=true"],
      "algorithm.tree_choices uses rank 500"),
    R("algorithm=medusa", ["algorithm.num_layers=0"], "no trainable parameters",
      label="algorithm.num_layers=0 (lm_head=shared: nothing to train)"),
    # ------------------------------------------------------------ EAGLE-3 settings
    C("algorithm=eagle3", E3 + ["algorithm.ttt_length=0"], "algorithm.ttt_length=0 must be"),
    C("algorithm=eagle3", E3 + ["algorithm.step_decay=-0.5"], "algorithm.step_decay=-0.5 must"),
    C("algorithm=eagle3", E3 + ["algorithm.draft_vocab_size=0"], "algorithm.draft_vocab_size=0"),
    C("algorithm=eagle3", TINY + E3 + ["algorithm.draft_vocab_size=1000"],
      "algorithm.draft_vocab_size=1000 must be at most"),
    C("algorithm=eagle3", E3 + ["algorithm.aux_layers=[1,2]"], "must name 3 decoder layers"),
    C("algorithm=eagle3", E3 + ["algorithm.aux_layers=[-1,0,1]"], "algorithm.aux_layers"),
    C("algorithm=eagle3", TINY + E3 + ["algorithm.aux_layers=[0,1,4]"],
      "must name layers of the target, 0..2"),
    C("algorithm=eagle3", TINY + E3 + ["algorithm.aux_layers=[0,1,3]"],
      "must name layers of the target, 0..2"),
    C("algorithm=eagle3", E3 + ["algorithm.aux_layers=[2,1,0]"], "sorted and unique"),
    C("algorithm=eagle3", E3 + ["algorithm.aux_layers=[1,1,0]"], "sorted and unique"),
    C("algorithm=eagle3", TINY + E3 + ["algorithm.num_attention_heads=3"],
      "algorithm.num_attention_heads=3 must divide model.arch.hidden_size=64"),
    C("algorithm=eagle3", TINY + E3 + ["algorithm.num_key_value_heads=3"],
      "algorithm.num_key_value_heads=3 must divide"),
    C("algorithm=eagle3", E3 + ["algorithm.intermediate_size=0"],
      "algorithm.intermediate_size=0 must be at least 1"),
    C("algorithm=eagle3", E3 + ["algorithm.tree_top_k=0"], "algorithm.tree_top_k=0 must be"),
    C("algorithm=eagle3", E3 + ["algorithm.tree_depth=0"], "algorithm.tree_depth=0 must be"),
    C("algorithm=eagle3", E3 + ["algorithm.tree_total_tokens=0"],
      "algorithm.tree_total_tokens=0 must be"),
    C("algorithm=eagle3", E3 + ["algorithm.top_k=0"], "algorithm.top_k=0 must be at least 1"),
    C("algorithm=eagle3", E3 + ["algorithm.depth=-1"], "algorithm.depth=-1 must be at least 0"),
    C("algorithm=eagle3", E3 + ["algorithm.total_token=1"],
      "algorithm.total_token=1 must be at least 2"),
    R("algorithm=eagle3", E3 + ["algorithm.draft_vocab_size=4", "decode.enabled=true"],
      "algorithm.top_k=10 exceeds the draft vocabulary"),
    R("algorithm=eagle3", E3 + ["algorithm.attention=flex"], "algorithm.attention",
      label="algorithm=eagle3 algorithm.attention=flex (on a CPU)"),
    R("algorithm=eagle3", E3 + ["algorithm.draft_vocab_size=1"], "algorithm.draft_vocab_size"),
    R("algorithm=eagle3", E3 + ["algorithm.draft_vocab_size=8"], "algorithm.draft_vocab_size",
      "run start", warn=True),
    # ------------------------------------------------------------ Hydra settings
    C("algorithm=hydra", ["algorithm=hydra", "algorithm.lm_loss_weight=0"],
      "algorithm.lm_loss_weight and algorithm.teacher_loss_weight are both 0"),
    C("algorithm=hydra", ["algorithm=hydra", "algorithm.num_layers=0"],
      "algorithm.num_layers=0 must be at least 1"),
    C("algorithm=hydra", ["algorithm=hydra", "algorithm.noise_alpha=-1"],
      "algorithm.noise_alpha=-1.0 must be a finite number >= 0"),
    R("algorithm=hydra", ["algorithm=hydra", "algorithm.tree_choices=[[0,0]]"],
      "algorithm.tree_choices: every path must be"),
    C("algorithm=hydra", ["algorithm=hydra", "export=[vllm]"],
      "No export is defined for algorithm 'hydra' (vLLM has no Hydra loader"),
    # ------------------------------------------------------------ DFlash settings
    C("algorithm=dflash", DF + ["algorithm.block_size=1"],
      "algorithm.block_size=1 must be at least 2"),
    C("algorithm=dflash", DF + ["algorithm.num_anchors=0"],
      "algorithm.num_anchors=0 must be at least 1"),
    C("algorithm=dflash", DF + ["algorithm.num_layers=0"],
      "algorithm.num_layers=0 must be at least 1"),
    C("algorithm=dflash", DF + ["algorithm.loss_gamma=0"], "algorithm.loss_gamma=0.0 must be"),
    C("algorithm=dflash", DF + ["algorithm.num_draft=16"],
      "algorithm.num_draft=16 exceeds the block_size - 1 = 15"),
    C("algorithm=dflash", DF + ["algorithm.labels=soft"], "algorithm.labels", when="compose"),
    C("algorithm=dflash", DF + ["algorithm.target_layers=[2,1]"],
      "algorithm.target_layers=[2, 1] must name at least one decoder layer"),
    C("algorithm=dflash", TINY + DF + ["algorithm.target_layers=[0,3]"],
      "algorithm.target_layers=[0, 3] must name layers 0..2 of the target's 4"),
    C("algorithm=dflash", TINY + DF + ["algorithm.mask_token_id=320"],
      "algorithm.mask_token_id=320 must be below the target's vocabulary of 320"),
    C("algorithm=dflash", TINY + DF + ["algorithm.num_key_value_heads=3"],
      "algorithm.num_key_value_heads=3 must divide the draft's attention heads"),
    # ------------------------------------------------------------ decode settings
    C("decode", ["decode.lookahead.variant=lade"], "decode.lookahead.variant", when="compose"),
    C("decode", ["decode.prompt_lookup_match=first"], "decode.prompt_lookup_match",
      when="compose"),
    C("decode", ["decode.num_prompts=0"], "decode.num_prompts=0 must be at least 1"),
    C("decode", ["decode.num_prompts=-1"], "decode.num_prompts=-1 must be at least 1"),
    C("decode", ["decode.max_new_tokens=0"], "decode.max_new_tokens=0 must be at least 1"),
    C("decode", ["decode.prompt_lookup_ngram=0"], "decode.prompt_lookup_ngram=0 must be at least 1"),
    C("decode", ["decode.prompt_lookup_draft=0"], "decode.prompt_lookup_draft=0 must be at least 1"),
    C("decode", ["decode.lookahead.level=2"], "decode.lookahead.level=2 must be at least 3"),
    C("decode", ["decode.lookahead.window=0"], "decode.lookahead.window=0 must be at least 1"),
    C("decode", ["decode.lookahead.guess=-1"], "decode.lookahead.guess=-1 must be at least 0"),
    C("decode", ["decode.prompts={tmp}/missing.jsonl"], "decode.prompts",
      label="decode.prompts=<missing file>"),
    C("decode", ["decode.prompts={tmp}"], "is a directory", label="decode.prompts=<a directory>"),
    C("decode", ["decode.prompts={tmp}/e.jsonl"], "decode.prompts", files={"e.jsonl": ""},
      label="decode.prompts=<empty file>"),
    C("decode", ["decode.prompts={tmp}/b.jsonl"], "decode.prompts",
      files={"b.jsonl": b"\x00\xff\xfe" * 40}, label="decode.prompts=<binary file>"),
    C("decode", ["decode.prompts={tmp}/j.jsonl"], "invalid JSON", files={"j.jsonl": "{nope\n"},
      label="decode.prompts=<invalid JSON line>"),
    C("decode", ["decode.prompts={tmp}/arr.jsonl"], "a question is a JSON object",
      files={"arr.jsonl": "[1, 2]\n"}, label="decode.prompts=<a JSON array>"),
    C("decode", ["decode.prompts={tmp}/nt.jsonl"], "a question needs 'turns'",
      files={"nt.jsonl": lines({"question": "hi"})}, label="decode.prompts=<rows without turns>"),
    C("decode", ["decode.prompts={tmp}/q2.jsonl"], "decode.prompts",
      files={"q2.jsonl": QUESTION + "{cut"}, label="decode.prompts=<2nd line cut off>"),
    C("decode", ["decode.prompts=hub:nope/nope"], "decode.prompts=hub:nope/nope needs the Hugging Face",
      label="decode.prompts=hub:nope/nope (offline)"),
    C("decode", ["decode.prompts=hub:"], "decode.prompts", label="decode.prompts=hub: (no id)"),
    C("decode", ["decode.num_prompts=1000"], "decode.num_prompts", warn=True),
    # the group's name before issue 9, still read (with a warning line) for one release
    C("decode", ["eval.num_prompts=0"], "decode.num_prompts=0 must be at least 1",
      label="eval.num_prompts=0 (the old name of decode.num_prompts)"),
    # ------------------------------------------------------------ cache
    C("cache", ["cache.max_bytes=0"], "cache.max_bytes=0 must be at least 1"),
    C("cache", ["cache.max_bytes=-1"], "cache.max_bytes=-1 must be at least 1"),
    C("cache", ["cache.shard_bytes=0"], "cache.shard_bytes=0 must be at least 1"),
    R("cache", ["cache.enabled=true", "cache.max_bytes=10", "cache.dir={tmp}/c"],
      "cache.max_bytes", label="cache.enabled=true cache.max_bytes=10"),
    R("cache", ["cache.enabled=true", "cache.dir={tmp}/f"], "cache.dir", files={"f": "x"},
      label="cache.enabled=true cache.dir=<a file>"),
    R("cache", ["cache.enabled=true", "cache.dir={tmp}/c"], "cache", prepare="no_disk",
      label="cache.enabled=true, too little disk (shutil.disk_usage: 1 kB free)"),
    # ------------------------------------------------------------ export
    C("export", ["export=[onnx]"], "export=[onnx]"),
    C("export", ["export=[sglang]"], "export=[sglang]"),
    C("export", ["algorithm=medusa", "export=[vllm,sglang]"], "export=[sglang]"),
    # ------------------------------------------------------------ objective (sweeps)
    R("objective", ["objective=eval_split.nope"], "objective=eval_split.nope", "preflight"),
    R("objective", ["objective=algorithm"], "objective=algorithm", "preflight"),
    # ------------------------------------------------------------ tracker
    R("tracker", ["tracker.mode=online"], "tracker.mode", "run start", warn=True, limit_s=30,
      label="tracker.mode=online (offline, no W&B login)", env={"WANDB_API_KEY": ""}),
    # ------------------------------------------------------------ disk
    R("disk", [], "Not enough disk", prepare="no_disk",
      label="too little disk for checkpoints (shutil.disk_usage: 1 kB free)"),
    # ------------------------------------------------------------ run directory
    R("run dir", ["trainer.resume=true"], "trainer.resume=true but", "run start", warn=True,
      label="trainer.resume=true (new run dir, no checkpoint)"),
    R("run dir", [], "already holds checkpoints", "run start", prepare="run_is_partial",
      label="<run dir with checkpoints>, no trainer.resume"),
    R("run dir", ["trainer.resume=true", "trainer.lr=0.5"], "trainer.lr", prepare="run_is_partial",
      label="trainer.resume=true with trainer.lr changed"),
    R("run dir", ["trainer.resume=true", "algorithm.num_heads=2"], "algorithm.num_heads",
      prepare="run_is_partial", label="trainer.resume=true with algorithm.num_heads changed"),
    R("run dir", ["trainer.resume=true"], "checkpoint", prepare="partial_weights_garbage",
      label="trainer.resume=true, the checkpoint's weights file is garbage"),
    R("run dir", [], "Another specbench process", "run start", prepare="run_locked",
      label="<run dir locked by another process>"),
    # ------------------------------------------------------------ python -m specbench (Hydra)
    Row("python -m specbench", "app", ["model=nope"], "model", "compose"),
    Row("python -m specbench", "app", ["trainer.lr=abc"], "trainer.lr", "compose"),
    Row("python -m specbench", "app", ["model=tiny-llama", "+trainer.typo=1"],
        "trainer.typo is not a setting", "preflight"),
    Row("python -m specbench", "app", ["model=tiny-llama", "hydra.run.dir={tmp}/f"],
        "hydra.run.dir", "preflight", files={"f": "x"},
        label="python -m specbench hydra.run.dir=<an existing file>"),
    # ------------------------------------------------------------ distributed launch
    C("trainer", ["trainer.distributed=zero"], "trainer.distributed", "compose"),
    C("trainer", ["trainer.fsdp_draft=half"], "trainer.fsdp_draft", "compose"),
    Row("distributed launch", "app", ["model=tiny-llama"], "MASTER_ADDR", "preflight",
        env={"WORLD_SIZE": "2", "RANK": "0"},
        label="WORLD_SIZE=2 RANK=0 python -m specbench (no launcher)"),
    Row("distributed launch", "app", ["model=tiny-llama"], "RANK=5", "preflight",
        env={"WORLD_SIZE": "2", "RANK": "5", "MASTER_ADDR": "127.0.0.1",
             "MASTER_PORT": "29531"}, label="WORLD_SIZE=2 RANK=5 (outside the world)"),
    Row("distributed launch", "app", ["model=tiny-llama"], "FSDP_OFFLOAD_PARAMS", "preflight",
        env={"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29532",
             "ACCELERATE_USE_FSDP": "true", "FSDP_OFFLOAD_PARAMS": "true"},
        label="accelerate launch --use_fsdp --fsdp_offload_params true"),
    Row("distributed launch", "app", ["model=tiny-llama"], "WORLD_SIZE=2", "preflight",
        env={"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
             "MASTER_PORT": "29533", "SPECBENCH_DIST_TIMEOUT_S": "3"},
        label="WORLD_SIZE=2 with one process started (the peer never arrives; "
              "SPECBENCH_DIST_TIMEOUT_S=3)"),
    # ------------------------------------------------------------ CLI: data.regenerate
    T("data.regenerate", ["--prompts", "{tmp}/p.jsonl", "--out", "{tmp}/c.jsonl",
                          "--model", "tiny-llama", "--max-new-tokens", "2"],
      "give a fresh --work-dir", files={"p.jsonl": '{"prompt": "hi"}\n', "c.jsonl.shards": None,
                                        "c.jsonl.shards/settings.json": '{"max_new_tokens": 9}'},
      label="python -m specbench.data.regenerate <over shards made with other settings>"),
    T("data.regenerate", ["--prompts", "{tmp}/missing.jsonl"], "--prompts",
      label="python -m specbench.data.regenerate --prompts <missing file>"),
    # ------------------------------------------------------------ CLI: evaluate
    T("evaluate", [], "run_dir"),
    T("evaluate", ["{tmp}/missing"], "missing", label="python -m specbench.evaluate <missing>"),
    T("evaluate", ["{tmp}"], "config.json", label="python -m specbench.evaluate <not a run dir>"),
    T("evaluate", ["{tmp}/f"], "f", files={"f": "x"},
      label="python -m specbench.evaluate <a file>"),
    T("evaluate", ["{run}", "--dtype", "float64"], "--dtype"),
    T("evaluate", ["{run}", "--num-prompts", "0"], "num_prompts"),
    T("evaluate", ["{run}", "--num-prompts", "abc"], "--num-prompts"),
    T("evaluate", ["{run}", "--max-new-tokens", "-1"], "max_new_tokens"),
    T("evaluate", ["{run}", "--prompts", "{tmp}/missing.jsonl"], "decode.prompts",
      label="python -m specbench.evaluate {run} --prompts <missing file>"),
    T("evaluate", ["{run}", "--prompts", "hub:nope/nope"], "hub:nope/nope"),
    T("evaluate", ["{run}", "--device", "tpu"], "--device"),
    T("evaluate", ["{run}", "--set", "algorithm.num_heads=2"],
      "changes what the trained weights mean"),
    T("evaluate", ["{run}", "--set", "tree_size=8"], "give algorithm.KEY=VALUE"),
    T("evaluate", ["{run}", "--set", "algorithm.nope=1"], "is not a setting of the medusa run"),
    T("evaluate", ["{run}", "--tracker", "nope"], "--tracker"),
    T("evaluate", ["{run}", "--label", "../x"], "--label"),
    T("evaluate", ["{run}", "--model", "nope"], "--model"),
    T("evaluate", ["{run}", "--model", "tiny-qwen2"], "another target"),
    T("evaluate", ["{partial}"], "draft.safetensors",
      label="python -m specbench.evaluate <interrupted run>"),
    T("evaluate", ["{run}"], "config.json", prepare="config_garbage",
      label="python -m specbench.evaluate <run with a damaged config.json>"),
    T("evaluate", ["{run}", "--label", "x"], "already exists", prepare="eval_label_exists",
      label="python -m specbench.evaluate {run} --label x (eval-x.json exists)"),
    T("evaluate", ["{run}", "--model", "model.arch.hidden_size=128"], "--model"),
    T("evaluate", ["--help"], "usage", ok=True),
    # ------------------------------------------------------------ CLI: export
    T("export", [], "run_dir"),
    T("export", ["{run}"], "--format"),
    T("export", ["{tmp}/missing", "--format", "vllm"], "missing",
      label="python -m specbench.export <missing> --format vllm"),
    T("export", ["{tmp}", "--format", "vllm"], "config.json",
      label="python -m specbench.export <not a run dir> --format vllm"),
    T("export", ["{run}", "--format", "onnx"], "--format"),
    T("export", ["{run}", "--format", "sglang"], "sglang"),
    T("export", ["{run}", "--format", "vllm", "--dtype", "float64"], "--dtype"),
    T("export", ["{run}", "--format", "vllm", "--out", "{tmp}/f"], "is a file", files={"f": "x"},
      label="python -m specbench.export {run} --format vllm --out <a file>"),
    T("export", ["{run}", "--format", "vllm", "--out", "{run}"], "never replaces"),
    T("export", ["{run}", "--format", "vllm", "--out", "{tmp}/mine"], "mine",
      files={"mine": None, "mine/notes.txt": "keep"},
      label="python -m specbench.export {run} --format vllm --out <a dir of the user's>"),
    T("export", ["{run}", "--format", "vllm", "--force", "--out", "{tmp}/mine"], "mine",
      files={"mine": None, "mine/notes.txt": "keep"},
      label="python -m specbench.export {run} --format vllm --force --out <a dir of the user's>"),
    T("export", ["{run}", "--format", "vllm"], "already exists", prepare="exported",
      label="python -m specbench.export {run} --format vllm (exported before, no --force)"),
    T("export", ["{partial}", "--format", "vllm"], "checkpoint",
      label="python -m specbench.export <interrupted run> --format vllm"),
    T("export", ["{run}", "--format", "vllm"], "config.json", prepare="config_garbage",
      label="python -m specbench.export <run with a damaged config.json> --format vllm"),
    T("export", ["--help"], "usage", ok=True),
    # ------------------------------------------------------------ CLI: compare
    T("compare", [], "paths"),
    T("compare", ["{tmp}/missing"], "does not exist", label="python -m specbench.compare <missing>"),
    T("compare", ["{tmp}"], "no finished specbench runs",
      label="python -m specbench.compare <empty dir>"),
    T("compare", ["{tmp}/f"], "f", files={"f": "x"}, label="python -m specbench.compare <a file>"),
    T("compare", ["{run}", "--format", "html"], "--format"),
    T("compare", ["{run}", "--tune", "trainer.seed"], "--tune trainer.seed"),
    T("compare", ["{run}", "--tune", "algorithm.num_heads"], "--tune algorithm.num_heads"),
    T("compare", ["{run}", "--tune", "trainer.nope"], "--tune trainer.nope"),
    T("compare", ["{run}", "--out", "{tmp}/f"], "--out", files={"f": "x"},
      label="python -m specbench.compare {run} --out <a file>"),
    T("compare", ["{run}"], "summary.json", prepare="summary_garbage",
      label="python -m specbench.compare <run with a damaged summary.json>"),
    T("compare", ["{partial}"], "interrupted",
      label="python -m specbench.compare <interrupted run>"),
    T("compare", ["{run}", "--tune", "trainer.lr,"], "--tune"),
    T("compare", ["--help"], "usage", ok=True),
    # ------------------------------------------------------------ CLI: bench
    T("bench", ["model=nope"], "model"),
    T("bench", ["trainer.lr=abc"], "trainer.lr"),
    T("bench", ["--iters=0"], "--iters"),
    T("bench", ["--iters=abc"], "--iters"),
    T("bench", ["--nope"], "--nope"),
    T("bench", ["--verify", "--dtype=float64"], "--dtype"),
    T("bench", ["--verify", "--json"], "--json"),
    T("bench", ["--verify", "--verify-mode=static,fast"], "--verify-mode"),
    T("bench", ["--help"], "Benchmark", ok=True),
    # ------------------------------------------------------------ CLI: feature_cache
    T("feature_cache", ["model=nope"], "model"),
    T("feature_cache", ["algorithm=nope"], "algorithm"),
    T("feature_cache", ["+trainer.typo=1"], "trainer.typo is not a setting"),
    T("feature_cache", ["cache.layers=all"], "cache.layers"),
    T("feature_cache", ["--nope"], "--nope"),
    T("feature_cache", ["--count-tokens", "model=tiny-llama", "data=jsonl"], "data.path"),
    T("feature_cache", ["--help"], "usage", ok=True),
]
