"""defect-replay --out never destroys what it did not write: a folder that already holds files is
refused unless --overwrite is given, and even then only the files defect-replay itself writes are
replaced; files are created exclusively and a symbolic link is never followed (a report.json link
to a file outside the folder is refused, the file left as it was)."""
import json
import os
import pathlib
import subprocess

import cv2
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
REPLAY = ROOT / "target" / "debug" / "defect-replay"
MODEL = str(ROOT / "models/test/squares_v8.onnx")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("squares_out")
    images, labels = root / "images", root / "labels"
    images.mkdir()
    labels.mkdir()
    for k in range(3):
        image = np.full((480, 640, 3), 20, np.uint8)
        x, y = 100 + 120 * k, 200
        image[y : y + 80, x : x + 80] = 255
        cv2.imwrite(str(images / f"f{k:03d}.png"), image)
        (labels / f"f{k:03d}.txt").write_text(f"0 {(x + 40) / 640} {(y + 40) / 480} {80 / 640} {80 / 480}\n")
    return root


def replay(dataset, *args, cwd=None):
    return subprocess.run(
        [str(REPLAY), "--model", MODEL, "--images", str(dataset / "images"), "--truth", str(dataset / "labels"),
         *map(str, args)],
        capture_output=True, text=True, timeout=300, cwd=cwd)


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_folder_holding_files_is_refused_without_overwrite(dataset, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("my own notes\n")
    result = replay(dataset, "--out", out)
    assert result.returncode != 0, result.stdout
    assert "not empty" in result.stderr and "--overwrite" in result.stderr and str(out) in result.stderr, result.stderr
    assert (out / "report.md").read_text() == "my own notes\n"
    assert listing(out) == ["report.md"]
    # An empty folder, or one that does not exist yet, is fine.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert replay(dataset, "--out", empty).returncode == 0
    assert "report.json" in listing(empty)
    fresh = tmp_path / "new" / "deeper"
    assert replay(dataset, "--out", fresh).returncode == 0
    assert "report.md" in listing(fresh)


def test_overwrite_replaces_only_the_files_defect_replay_writes(dataset, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.md").write_text("an old report\n")
    (out / "notes.txt").write_text("keep me\n")
    (out / "figures").mkdir()
    result = replay(dataset, "--out", out, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert (out / "report.md").read_text().startswith("# Replay report")
    assert (out / "notes.txt").read_text() == "keep me\n"
    assert (out / "figures").is_dir()
    assert json.loads((out / "report.json").read_text())["map50"] > 0.5
    # Twice into the same folder with --overwrite: the second run replaces the first's files.
    assert replay(dataset, "--out", out, "--overwrite").returncode == 0


def test_a_link_in_the_folder_is_never_followed(dataset, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text('{"precious": true}\n')
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside, out / "report.json")
    for flags in [[], ["--overwrite"]]:
        result = replay(dataset, "--out", out, *flags)
        assert result.returncode != 0, (flags, result.stdout)
        assert "report.json" in result.stderr, (flags, result.stderr)
        assert outside.read_text() == '{"precious": true}\n', flags
        assert (out / "report.json").is_symlink(), flags
        assert listing(out) == ["report.json"], flags
    # A dangling link is not followed either (it would create the file it points to).
    os.remove(out / "report.json")
    target = tmp_path / "created-elsewhere.json"
    os.symlink(target, out / "report.json")
    result = replay(dataset, "--out", out, "--overwrite")
    assert result.returncode != 0 and "report.json" in result.stderr, result.stderr
    assert not target.exists()


def test_the_swept_policy_never_replaces_a_file_of_the_user(dataset, tmp_path):
    """Without --out the swept policy goes to the current folder: an existing swept-policy.toml
    there is the user's until --overwrite says otherwise."""
    (tmp_path / "swept-policy.toml").write_text("# mine\n")
    result = replay(dataset, "--conf", "0.01", "--sweep-recall", "0.5", cwd=tmp_path)
    assert result.returncode != 0 and "swept-policy.toml" in result.stderr, result.stderr
    assert (tmp_path / "swept-policy.toml").read_text() == "# mine\n"
    result = replay(dataset, "--conf", "0.01", "--sweep-recall", "0.5", "--overwrite", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[classes." in (tmp_path / "swept-policy.toml").read_text()
