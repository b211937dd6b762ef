"""shapes-ip2p: exact training triples, the vocabulary and input-channel extensions, bit-identical first steps
and resume, the editor's sampling, the fidelity evaluation, and `--method instruct-pix2pix --task shapes`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgbench.errors import UserError
from imgbench.provenance import data_record
from imgbench.worlds.shapes import ip2p, nets
from imgbench.worlds.shapes.checker import Detection, _relation_holds, detect
from imgbench.worlds.shapes.edits import apply, parse
from imgbench.worlds.shapes.grammar import splits
from imgbench.worlds.shapes.ip2p_data import instruction_words, make_triple, things_of
from imgbench.worlds.shapes.ip2p_eval import kept_unnamed, reads_as, regeneration_caption
from imgbench.worlds.shapes.model import SHIPPED
from imgbench.worlds.shapes.render import render
from imgbench.worlds.shapes.train_ip2p import IP2PTrainConfig, IP2PTrainer, same_base


def triples(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = [spec for skill in splits()["train"].values() for _, spec, _ in skill]
    for _ in range(n):
        pixels = np.asarray(render(rows[int(rng.integers(len(rows)))], rng))
        things = things_of(pixels)
        text, target = make_triple(pixels, things, rng)
        yield pixels, [(t.color, t.shape) for t in things], text, target


def test_each_training_target_reads_as_its_instruction_says() -> None:
    kinds = set()
    for pixels, scene, text, target in triples(240):
        edit = parse(text)
        assert edit is not None, text
        kinds.add(edit.kind)
        found = detect(Image.fromarray(target))
        got = sorted((d.color, d.shape) for d in found)
        if edit.kind in ("none", "move"):
            assert got == sorted(scene), text
            if edit.kind == "none":
                assert (target == pixels).all()
            else:
                assert any(_relation_holds(a, b, edit.rel) for a in found if a.shape == edit.shape
                           for b in found if b.shape == edit.other), text
        elif edit.kind == "add" and edit.color is None:
            assert len(got) == len(scene) + 1 and sorted(s for _, s in got).count(edit.shape) == \
                [s for _, s in scene].count(edit.shape) + 1
        else:
            assert got == sorted(apply(edit, scene)), (text, scene, got)
    assert kinds == {"add", "remove", "recolor", "reshape", "move", "none"}


def test_the_tokenizer_keeps_caption_ids_and_learns_instruction_words() -> None:
    base = nets.load_tokenizer(SHIPPED / "tokenizer")
    extended = ip2p.extended_tokenizer(base, instruction_words())
    caption = ["a red circle left of a blue square"]
    assert (nets.tokenize(extended, caption) == nets.tokenize(base, caption)).all()
    ids = nets.tokenize(extended, ["remove the red circle", "nothing to change", "put the circle above the square"])
    assert nets.UNK_ID not in ids.tolist()[0] + ids.tolist()[1] + ids.tolist()[2]
    assert {"add", "remove", "make", "put", "nothing"} <= set(instruction_words())


def test_new_source_channels_start_at_zero() -> None:
    import torch
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(SHIPPED / "unet", torch_dtype=torch.float32).eval()
    x, states = torch.randn(2, 12, 16, 16), torch.randn(2, nets.MAX_LENGTH, unet.config.cross_attention_dim)
    pooled = torch.randn(2, unet.config.cross_attention_dim)
    with torch.no_grad():
        before = unet(x, 10, encoder_hidden_states=states, class_labels=pooled).sample
        ip2p.add_source_channels(unet)
        after = unet(torch.cat([x, torch.randn_like(x)], 1), 10, encoder_hidden_states=states,
                     class_labels=pooled).sample
    assert unet.config.in_channels == 24 and torch.allclose(before, after, atol=1e-5)


@pytest.fixture(scope="module")
def drawings(tmp_path_factory) -> Path:
    """A stand-in for `llava-data`: renders saved as 'drawings', with the seeds record a real file carries."""
    root = tmp_path_factory.mktemp("ip2p-data")
    pixels = np.stack([pixels for pixels, *_ in triples(8, seed=1)])
    path = root / "data.npz"
    np.savez_compressed(path, pixels=pixels, questions=np.array(["q"] * 8), answers=np.array(["a"] * 8))
    path.with_suffix(".json").write_text(json.dumps({"data": data_record(range(5_000, 5_008), 2, captions="train")}))
    return path


def trainer(workdir: Path, drawings: Path) -> IP2PTrainer:
    return IP2PTrainer(IP2PTrainConfig(base=str(SHIPPED), generated=str(drawings), batch=3, warmup=2), workdir)


def weights(t: IP2PTrainer) -> dict:
    return {**{f"u.{k}": v for k, v in t.unet.state_dict().items()}, **{f"t.{k}": v for k, v in
                                                                        t.text.state_dict().items()},
            **{f"e.{k}": v for k, v in t.ema_unet.state_dict().items()}}


def test_first_steps_are_bit_identical_and_a_resumed_run_equals_an_uninterrupted_one(tmp_path, drawings) -> None:
    import torch

    whole = trainer(tmp_path / "whole", drawings)
    whole.run(3)
    again = trainer(tmp_path / "again", drawings)
    again.run(2)
    resumed = trainer(tmp_path / "again", drawings)
    assert resumed.step == 2
    resumed.run(3)
    fresh = trainer(tmp_path / "fresh", drawings)
    fresh.run(3)
    for other in (resumed, fresh):
        theirs = weights(other)
        assert all(torch.equal(value, theirs[key]) for key, value in weights(whole).items())
    assert [row["loss"] for row in whole.history] == [row["loss"] for row in fresh.history]


def test_a_run_continues_another_under_a_new_schedule(tmp_path, drawings) -> None:
    import torch

    first = trainer(tmp_path / "first", drawings)
    first.run(2)
    config = IP2PTrainConfig(base=str(SHIPPED), generated=str(drawings), batch=3, warmup=2, generated_share=0.75,
                             anneal_from=2, anneal_steps=2, init_from=str(tmp_path / "first"))
    branch = IP2PTrainer(config, tmp_path / "branch")
    assert branch.step == 2 and all(torch.equal(value, weights(branch)[key]) for key, value in weights(first).items())
    branch.run(3)
    assert branch.step == 3 and IP2PTrainer(config, tmp_path / "branch").step == 3  # its own checkpoint wins
    with pytest.raises(UserError, match=r"must be this one.s; pass the same \(--batch 3 there, 4 here\)"):
        IP2PTrainer(IP2PTrainConfig(base=str(SHIPPED), batch=4, init_from=str(tmp_path / "first")), tmp_path / "x")


def test_a_branch_accepts_a_copy_of_its_base_and_refuses_other_weights(tmp_path) -> None:
    import shutil

    copy = tmp_path / "checkout" / "weights"
    shutil.copytree(SHIPPED, copy, ignore=shutil.ignore_patterns("ip2p", "detector", "clip", "llava*"))
    assert same_base(str(SHIPPED), str(copy))
    unet = next((copy / "unet").glob("*.safetensors"))
    data = unet.read_bytes()
    unet.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert not same_base(str(SHIPPED), str(copy)) and not same_base(str(SHIPPED), str(tmp_path / "gone"))


@pytest.fixture(scope="module")
def editor_folder(tmp_path_factory, drawings) -> Path:
    root = tmp_path_factory.mktemp("ip2p-editor")
    t = trainer(root / "work", drawings)
    t.run(2)
    return t.export(root / "editor")


def test_export_names_the_drawings_seeds_and_the_editor_is_a_part(editor_folder) -> None:
    manifest = json.loads((editor_folder / "manifest.json").read_text())
    assert manifest["component"] == "ip2p" and manifest["data"]["seeds"] == [[5_000, 5_007]]
    (part,) = ip2p.ShapesEditor(editor_folder, steps=2).parts()
    assert part["seeds"] == [[5_000, 5_007]] and part["split_version"] == 2


def test_an_edit_does_not_depend_on_batch_or_position_and_both_scales_count(editor_folder) -> None:
    images = [Image.fromarray(pixels) for pixels, *_ in triples(3, seed=2)]
    texts = ["remove the circle", "make the square red", "add a blue triangle"]
    editor = ip2p.ShapesEditor(editor_folder, steps=2, guidance_scale=3.0, image_guidance_scale=1.5)
    together = editor.edit(images, texts, [7, 8, 9])
    alone = editor.edit(images[1:2], texts[1:2], [8])
    swapped = editor.edit(images[::-1], texts[::-1], [9, 8, 7])
    assert np.array_equal(np.asarray(together[1]), np.asarray(alone[0]))
    assert np.array_equal(np.asarray(together[0]), np.asarray(swapped[2]))
    for other in ({"guidance_scale": 1.0, "image_guidance_scale": 1.5}, {"guidance_scale": 3.0,
                                                                         "image_guidance_scale": 1.0}):
        changed = ip2p.ShapesEditor(editor_folder, steps=2, **other).edit(images[1:2], texts[1:2], [8])
        assert not np.array_equal(np.asarray(changed[0]), np.asarray(alone[0]))
    assert ip2p.ShapesEditor(editor_folder, steps=2).identity()["weights"]["sha256"] == \
        editor.identity()["weights"]["sha256"]


def test_a_missing_editor_names_the_command_that_makes_it(tmp_path) -> None:
    with pytest.raises(UserError, match="imgbench train shapes ip2p"):
        ip2p.ShapesEditor(tmp_path / "nowhere")


def det(color: str, shape: str, x: float, y: float = 10.0) -> Detection:
    return Detection(color, shape, x, y, 40)


def test_fidelity_rules() -> None:
    add = parse("add a circle")
    assert reads_as([det("red", "square", 5), det("blue", "circle", 20)], [("red", "square"), (None, "circle")], add)
    assert not reads_as([det("red", "square", 5)], [("red", "square"), (None, "circle")], add)
    move = parse("put the circle left of the square")
    scene = [("red", "square"), ("blue", "circle")]
    assert reads_as([det("blue", "circle", 4), det("red", "square", 20)], scene, move)
    assert not reads_as([det("red", "square", 4), det("blue", "circle", 20)], scene, move)
    recolor = parse("make the red square blue")
    assert kept_unnamed([det("blue", "circle", 4)], scene, recolor)
    assert not kept_unnamed([det("blue", "square", 4)], scene, recolor)
    assert regeneration_caption(move, scene) == "a blue circle left of a red square"
    assert regeneration_caption(add, [("red", "square"), (None, "circle")]) == "a red square and a circle"
    assert regeneration_caption(parse("remove the red square"), []) == ""


def test_eval_command_writes_a_summary_and_rows(tmp_path, editor_folder, cli) -> None:
    out = tmp_path / "fidelity.json"
    status, _, _ = cli("train", "shapes", "eval-ip2p", "--editor", editor_folder, "--split", "val", "--seeds", "100",
                       "--steps", "2", "--nothing-limit", "3", "--out", out)
    assert status == 0
    report = json.loads(out.read_text())
    assert report["drawings"] == 96 and report["per_kind"]["none"]["n"] <= 4
    rows = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert len(rows) == report["overall_edits"]["n"] + report["per_kind"]["none"]["n"]
    assert {"intended", "kept", "regeneration_intended"} <= set(rows[0])


def test_the_method_runs_on_shapes_with_its_yaml_defaults_and_the_report_shows_the_edit(tmp_path, editor_folder,
                                                                                          cli) -> None:
    common = ["--task", "shapes", "--limit", "3", "--seeds", "0", "--output", tmp_path, "--model-arg", "steps=2"]
    assert cli("run", "--method", "base", *common)[0] == 0
    status, _, err = cli("run", "--method", "instruct-pix2pix", *common, "--method-arg",
                         f"editor_path={editor_folder}", "--method-arg", "steps=2")
    assert status == 0, err
    (run,) = (tmp_path / "runs" / "shapes" / "shapes" / "instruct-pix2pix").iterdir()
    items = [json.loads(line) for line in (run / "generations.jsonl").read_text().splitlines()]
    assert len(items) == 3 and all(item["info"]["cost"]["generations"] == 0 for item in items)
    identity = json.loads((run / "run.json").read_text())["identity"]["method"]
    assert identity["resolved"]["editor"]["pipeline"] == "shapes"
    assert identity["params"]["mllm"] == "shapes-llava" and identity["params"]["resolution"] == 32
    assert cli("report", "--output", tmp_path)[0] == 0
    page = (tmp_path / "report" / "index.html").read_text()
    edited = [item for item in items if item["info"]["edited"]]
    if edited:
        said = json.loads((run / edited[0]["artefacts"]["instruction"]).read_text())["instruction"]
        assert "class='edit'" in page and said in page


def test_refused_editor_settings_exit_2(tmp_path, editor_folder, cli) -> None:
    status, _, err = cli("run", "--method", "instruct-pix2pix", "--task", "shapes", "--limit", "1", "--seeds", "0",
                         "--output", tmp_path, "--method-arg", f"editor_path={editor_folder}", "--method-arg",
                         "resolution=64")
    assert status == 2 and "resolution=32" in err


def test_the_shipped_yaml_holds_the_guidance_the_val_rule_chose() -> None:
    import subprocess
    import sys

    import yaml

    repo = Path(__file__).resolve().parent.parent  # val-guidance.json: results/reproduce_shapes.sh ip2p_val
    out = subprocess.run([sys.executable, "results/shapes/ip2p/choose_guidance.py"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout
    chosen = out.strip().splitlines()[-1]
    params = yaml.safe_load((repo / "methods/instruct_pix2pix/shapes.yaml").read_text())["params"]
    assert chosen == f"chosen: guidance_scale {params['guidance_scale']:g}, image_guidance_scale " \
                     f"{params['image_guidance_scale']:g}"
