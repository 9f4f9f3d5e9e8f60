"""The magnetic-tile recipes' one commands (training/retrain_mtd.sh, retrain_mtd_seg.sh) refuse bad
input before they install or build anything, naming what is wrong; the splits keep a tile's views
together where asked; the replay sets hold exactly their split; training/mtd_ref.py parses its
commands without torch (torch is only imported to build)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SCRIPT = os.path.join(ROOT, "training", "retrain_mtd.sh")


def test_retrain_mtd_needs_the_dataset(tmp_path):
    subprocess.run(["bash", "-n", SCRIPT], check=True)
    r = run_recipe(SCRIPT, {}, tmp_path)
    assert r.returncode != 0
    assert "MTD_DIR" in r.stderr
    assert not (tmp_path / "no-venv").exists()


def test_retrain_mtd_refuses_an_unknown_method(tmp_path):
    r = run_recipe(SCRIPT, {"MTD_DIR": str(tmp_path), "METHOD": "padim"}, tmp_path)
    assert r.returncode == 2
    assert "METHOD must be reference or unet, not 'padim'" in r.stderr
    assert not (tmp_path / "no-venv").exists()


def test_mtd_ref_commands_parse_without_torch():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "training", "mtd_ref.py"), "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for cmd in ("build", "eval", "ablation"):
        assert cmd in r.stdout


def _mtd():
    sys.path.insert(0, os.path.join(ROOT, "training"))
    import mtd

    return mtd


# the six lighting views of one tile: by number they fall into every split, by part all into test
SIX_VIEWS = [(1, 1810), (2, 1836), (3, 1855), (4, 1877), (5, 1903), (6, 1965)]


def _write_tiles(root, tiles):
    """A dataset copy under root: every folder of the dataset, and a grey 16x16 tile for each
    (folder, exp, number), with a small square mask beside each defective one."""
    import cv2
    import numpy as np

    img = np.full((16, 16), 128, np.uint8)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 255
    for folder in _mtd().FOLDERS:
        os.makedirs(root / folder / "Imgs", exist_ok=True)
    for folder, e, n in tiles:
        stem = root / folder / "Imgs" / f"exp{e}_num_{n}"
        cv2.imwrite(f"{stem}.jpg", img)
        if folder != "MT_Free":
            cv2.imwrite(f"{stem}.png", mask)


def test_views_of_one_tile_are_one_part():
    """The six lighting views of a tile (exp1..exp6, numbers a few dozen apart) are one part; the
    next exp1 starts the next part; a long jump starts one even where exp increases; a small step
    back in exp is merged rather than split (the stricter grouping)."""
    mtd = _mtd()
    names = [f"MT_Free/Imgs/exp{e}_num_{n}.jpg" for e, n in
             [(1, 1810), (2, 1836), (3, 1855), (4, 1877), (5, 1903), (6, 1965),
              (1, 2038), (2, 2060), (3, 2074), (5, 2500), (6, 2530), (2, 2540)]]
    names.append("MT_Crack/Imgs/exp4_num_1880.jpg")  # a defective view of the first part
    pid = mtd.part_ids(names)
    first = {pid[n] for n in names[:6]} | {pid[names[-1]]}
    assert len(first) == 1
    assert pid[names[6]] == pid[names[7]] == pid[names[8]] != pid[names[0]]
    assert pid[names[9]] != pid[names[8]]  # jump of 426 > PART_GAP although exp increases
    assert pid[names[11]] == pid[names[10]]  # exp goes back after 10: merged, not split


def test_part_split_keeps_every_view_of_a_tile_in_one_split(tmp_path):
    mtd = _mtd()
    # one part of six views whose own numbers fall into every split under n % 5, and other parts far away
    _write_tiles(tmp_path, [("MT_Free", e, n) for e, n in SIX_VIEWS]
                 + [(folder, 1, 10000 * (k + 1)) for k, folder in enumerate(mtd.FOLDERS[1:])])
    by_number = {os.path.basename(t[0]): t[3] for t in mtd.list_tiles(str(tmp_path))}
    by_part = {os.path.basename(t[0]): t[3] for t in mtd.list_tiles(str(tmp_path), "part")}
    free = [f"exp{e}_num_{n}.jpg" for e, n in SIX_VIEWS]
    assert {by_number[f] for f in free} == {"test", "val", "train"}
    assert {by_part[f] for f in free} == {"test"}  # the split of the smallest number, 1810 % 5 == 0


SEG_SCRIPT = os.path.join(ROOT, "training", "retrain_mtd_seg.sh")
# each recipe and the file that says a run folder already holds a split's data
RECIPES = [(SCRIPT, "data/train.npz"), (SEG_SCRIPT, "data.pkl")]


def run_recipe(script, env_extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MTD_DIR", "METHOD", "SPLIT_BY", "RUN")}
    env["VENV"] = str(tmp_path / "no-venv")
    env.update(env_extra)
    return subprocess.run(["bash", script], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("script,made", RECIPES)
def test_recipes_refuse_an_unknown_split(script, made, tmp_path):
    subprocess.run(["bash", "-n", script], check=True)
    r = run_recipe(script, {"MTD_DIR": str(tmp_path), "SPLIT_BY": "random"}, tmp_path)
    assert r.returncode == 2
    assert "SPLIT_BY must be number or part, not 'random'" in r.stderr
    assert not (tmp_path / "no-venv").exists()


@pytest.mark.parametrize("script,made", RECIPES)
def test_recipes_refuse_a_run_made_with_the_other_split(script, made, tmp_path):
    """A run folder keeps its split: resuming or re-exporting it under the other split would mix a
    model trained on one split with the other's test tiles, so the recipe stops before anything
    is installed or trained."""
    run_dir = tmp_path / "run"
    (run_dir / "data").mkdir(parents=True)
    (run_dir / made).write_bytes(b"")
    (run_dir / "data" / "split_by").write_text("number\n")
    env = {"MTD_DIR": str(tmp_path), "SPLIT_BY": "part", "RUN": str(run_dir)}
    r = run_recipe(script, env, tmp_path)
    assert r.returncode == 2
    assert "was made with SPLIT_BY=number, not part" in r.stderr
    assert not (tmp_path / "no-venv").exists()
    # a folder made before the split was recorded is a number-split folder
    (run_dir / "data" / "split_by").unlink()
    r = run_recipe(script, env, tmp_path)
    assert r.returncode == 2 and "SPLIT_BY=number" in r.stderr


def test_seg_replay_set_follows_the_split(tmp_path):
    """training/mtd_seg_replay.py links a split's tiles into one folder; written again into the same
    folder for another split it removes the links the other split left (and only its links)."""
    pytest.importorskip("pycocotools")
    mtd = _mtd()
    import mtd_seg_replay

    data = tmp_path / "mtd"
    _write_tiles(data, [("MT_Free", e, n) for e, n in SIX_VIEWS]
                 + [(folder, 1, 10000 * (k + 1)) for k, folder in enumerate(mtd.FOLDERS[1:])])
    out = tmp_path / "set"
    mtd_seg_replay.write_split(str(data), "test", str(out), "part")
    assert len(os.listdir(out / "images")) == 6 + 5  # the free tile's views, one defective tile per class
    coco, free, _ = mtd_seg_replay.write_split(str(data), "test", str(out), "number")
    defective = [f"{f[3:].lower()}_exp1_num_{10000 * (k + 1)}.jpg" for k, f in enumerate(mtd.FOLDERS[1:])]
    free_test = ["free_exp1_num_1810.jpg", "free_exp3_num_1855.jpg", "free_exp6_num_1965.jpg"]
    assert sorted(os.listdir(out / "images")) == sorted(free_test + defective)
    assert len(free) == 3 and len(coco["annotations"]) == 5  # 1836, 1877, 1903 (not n % 5 == 0) gone
    (out / "images" / "notes.txt").write_text("not a link")
    with pytest.raises(SystemExit, match="not a link this script made"):
        mtd_seg_replay.write_split(str(data), "test", str(out), "number")
    assert (out / "images" / "notes.txt").exists()


def test_published_protocol_refuses_names_outside_the_dataset(tmp_path):
    """training/mtd_ref.py published: a train list naming a file that is not a defect-free tile of
    the dataset (a defective one, or one of another copy) is refused with its name, before the
    bank is built (and without torch)."""
    _write_tiles(tmp_path, [(folder, 1, 100 + len(folder)) for folder in _mtd().FOLDERS])
    listed = tmp_path / "train.txt"
    listed.write_text("exp1_num_107.jpg\nexp1_num_111.jpg\n")  # MT_Free's, then MT_Blowhole's
    r = subprocess.run([sys.executable, os.path.join(ROOT, "training", "mtd_ref.py"), "published",
                        "--mtd", str(tmp_path), "--train-list", str(listed)], capture_output=True, text=True)
    assert r.returncode != 0
    assert "1 names in" in r.stderr and "first: exp1_num_111.jpg" in r.stderr, r.stderr


def test_anomaly_replay_set_follows_the_split(tmp_path):
    """training/mtd.py replay writes a split's set (image and mask links, truth.csv); written again
    into the same folder under the other --split-by, its images are exactly its truth's."""
    import argparse

    mtd = _mtd()
    data = tmp_path / "mtd"
    _write_tiles(data, [("MT_Free", e, n) for e, n in SIX_VIEWS]
                 + [("MT_Crack", 1, 20000), ("MT_Crack", 2, 20031)]  # one tile: 20000 test, 20031 val by number
                 + [(folder, 1, 40001 + 10000 * k)  # n % 5 == 1: validation, out of the test set
                    for k, folder in enumerate(f for f in mtd.FOLDERS if f not in ("MT_Free", "MT_Crack"))])
    out = tmp_path / "test-set"
    for split_by in ("part", "number"):
        mtd.replay(argparse.Namespace(mtd=str(data), out=str(out), split_by=split_by, split="test"))
        truth = (out / "truth.csv").read_text().split()[1:]
        images = sorted(os.listdir(out / "images"))
        assert images == sorted(line.split(",")[0] for line in truth), (split_by, images)
        assert sorted(os.listdir(out / "masks")) == sorted(
            os.path.splitext(i)[0] + ".png" for i in images if i.startswith("crack_"))
    # by number the test holds 1810, 1855, 1965 and the crack view 20000; by part all eight views
    assert len(images) == 4
