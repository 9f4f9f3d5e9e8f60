"""The magnetic-tile anomaly recipe's one command (training/retrain_mtd.sh) refuses bad input
before it installs or builds anything, naming what is wrong; training/mtd_ref.py parses its
commands without torch (torch is only imported to build)."""
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SCRIPT = os.path.join(ROOT, "training", "retrain_mtd.sh")


def run(env_extra, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MTD_DIR", "METHOD")}
    env["VENV"] = str(tmp_path / "no-venv")
    env.update(env_extra)
    return subprocess.run(["bash", SCRIPT], env=env, capture_output=True, text=True)


def test_retrain_mtd_needs_the_dataset(tmp_path):
    subprocess.run(["bash", "-n", SCRIPT], check=True)
    r = run({}, tmp_path)
    assert r.returncode != 0
    assert "MTD_DIR" in r.stderr
    assert not (tmp_path / "no-venv").exists()


def test_retrain_mtd_refuses_an_unknown_method(tmp_path):
    r = run({"MTD_DIR": str(tmp_path), "METHOD": "padim"}, tmp_path)
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
    import cv2
    import numpy as np

    mtd = _mtd()
    img = np.full((8, 8), 128, np.uint8)
    # one part of six views whose own numbers fall into every split under n % 5
    views = [(1, 1810), (2, 1836), (3, 1855), (4, 1877), (5, 1903), (6, 1965)]
    for folder in mtd.FOLDERS:
        os.makedirs(tmp_path / folder / "Imgs")
    for e, n in views:
        cv2.imwrite(str(tmp_path / "MT_Free" / "Imgs" / f"exp{e}_num_{n}.jpg"), img)
    for k, folder in enumerate(mtd.FOLDERS[1:]):  # other parts, far away
        cv2.imwrite(str(tmp_path / folder / "Imgs" / f"exp1_num_{10000 * (k + 1)}.jpg"), img)
    by_number = {os.path.basename(t[0]): t[3] for t in mtd.list_tiles(str(tmp_path))}
    by_part = {os.path.basename(t[0]): t[3] for t in mtd.list_tiles(str(tmp_path), "part")}
    free = [f"exp{e}_num_{n}.jpg" for e, n in views]
    assert {by_number[f] for f in free} == {"test", "val", "train"}
    assert {by_part[f] for f in free} == {"test"}  # the split of the smallest number, 1810 % 5 == 0
