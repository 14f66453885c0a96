"""The W&B dashboard of docs/wandb.md, built offline and read back: readable groups, run names
unique across sweeps, the weights artifact, and `compare --wandb` logging the report as a run of
the compared runs' group."""

from __future__ import annotations

import re
from pathlib import Path

from specbench.compare.cli import main as compare_main
from specbench.config import compose
from specbench.tracking import group_name, run_name

from .conftest import tiny_overrides
from .test_checkpoint_tracking import _wandb_records

DOC = Path(__file__).parents[1] / "docs" / "wandb.md"


def records(folder: Path) -> dict:
    files = list(folder.glob("wandb/offline-run-*/*.wandb"))
    assert len(files) == 1, files
    kinds = {}
    for r in _wandb_records(files[0]):
        kinds.setdefault(r.WhichOneof("record_type"), []).append(r)
    return kinds


def logged_keys(kinds) -> set[str]:
    keys = {i.key or "/".join(i.nested_key) for r in kinds.get("history", [])
            for i in r.history.item}
    return keys | {u.key for r in kinds.get("summary", []) for u in r.summary.update}


def train_pair(tmp_path, conv_file):
    from specbench.evaluate import evaluate
    from specbench.trainer import train

    dirs = []
    for sweep, alg in (("12-00-00-000001", "medusa"), ("12-30-00-000002", "eagle3")):
        run = tmp_path / "multirun" / sweep / f"0-{alg}"
        over = tiny_overrides(conv_file, **{"algorithm": alg, "trainer.max_steps": 2,
                                            "tracker.mode": "offline",
                                            "tracker.log_weights": "true"})
        train(compose(over), run, after=lambda tracker, run=run: evaluate(
            run, {"num_prompts": 2, "max_new_tokens": 4}, tracker=tracker))
        dirs.append(run)
    return dirs


def test_dashboard_built_offline_matches_the_doc(tmp_path, conv_file, capsys):
    import json

    runs = train_pair(tmp_path, conv_file)
    fp = json.loads((runs[0] / "summary.json").read_text())["fingerprint"]
    group = f"random.convs.seed0.{fp}"  # the tiny target is random, the data file convs.jsonl
    assert group_name({"model.hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "data.path":
                       "embedded:chat-large.jsonl.gz", "trainer.seed": 2}, "f") \
        == "SmolLM2-135M-Instruct.chat-large.seed2.f"
    assert group_name({"model.hub_id": "Qwen/Qwen2.5-7B-Instruct", "data.hub_id":
                       "HuggingFaceH4/ultrachat_200k", "trainer.seed": 0}, "f") \
        == "Qwen2.5-7B-Instruct.ultrachat_200k.seed0.f"
    names = []
    for run in runs:
        kinds = records(run)
        meta = kinds["run"][0].run
        assert meta.run_group == group  # readable prefix + fingerprint, shared by both
        names.append(meta.display_name)
        art = [r.artifact for r in kinds.get("artifact", []) if r.artifact.type == "model"]
        assert len(art) == 1
        assert art[0].name == f"draft-{meta.job_type}-{fp}"
        assert "decode/draft_tree/tau" in logged_keys(kinds)
    # both sweeps' first job is 0-<alg>; the parent folder keeps the names unique
    assert names == ["12-00-00-000001/0-medusa", "12-30-00-000002/0-eagle3"]
    assert run_name(runs[0]) == names[0]

    out = tmp_path / "cmp"
    assert compare_main([*map(str, runs), "--out", str(out), "--wandb", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert f"W&B (offline): group {group}" in printed, printed[-600:]
    kinds = records(out)
    meta = kinds["run"][0].run
    assert meta.run_group == group and meta.job_type == "compare"
    keys = logged_keys(kinds)
    assert "comparison/report/_type" in keys and "comparison/headline" in keys
    assert any(k.startswith("comparison/") and k.endswith("/_type") and "report" not in k
               for k in keys)  # the report's tables
    # every W&B key the doc's dashboard names is one that was logged
    doc = DOC.read_text()
    named = set(re.findall(r"`((?:comparison|decode)/[a-z_/0-9]+)`", doc))
    assert {"comparison/headline", "decode/draft_tree/tau"} <= named
    train_keys = logged_keys(records(runs[0])) | logged_keys(records(runs[1]))
    missing = {k for k in named if not any(x == k or x.startswith(k + "/") for x in
                                           keys | train_keys)}
    assert missing == set()
