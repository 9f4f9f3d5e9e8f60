"""defect-replay against hostile input (what an adversarial run found to hold, kept as tests):
truth that names files outside the image folder (path traversal) is matched by base name and
never opened; image and mask folders of symbolic links replay exactly as the files they point
to, and a dangling link is an error naming it, not a crash; a 200,000-deep JSON truth file is
refused as invalid JSON, not a stack overflow; class names holding Markdown and HTML are written
into report.md inside its code block, which they cannot close (the table's rows go on after
the name, and CommonMark closes a fence only on a line of nothing else)."""
import json
import os
import pathlib
import re
import subprocess

import cv2
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
REPLAY = ROOT / "target" / "debug" / "defect-replay"
SQUARES = str(ROOT / "models/test/squares_v8.onnx")
ANOMALY = str(ROOT / "models/test/anomaly_ours.onnx")


def replay(*args, cwd=None):
    return subprocess.run([str(REPLAY), *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def surfaces(tmp_path_factory):
    """Six 224x128 surfaces for anomaly_ours.onnx (map = 10 x brightness, threshold 7): three
    dark (good), three with a bright square (defective), and the squares' masks."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rows = ["file,label"]
    for i in range(6):
        image = np.full((128, 224, 3), 40, np.uint8)
        bad = i % 2 == 1
        if bad:
            x, y = 20 + 30 * i, 30 + 10 * i
            image[y : y + 40, x : x + 40] = 250
            mask = np.zeros((128, 224), np.uint8)
            mask[y : y + 40, x : x + 40] = 255
            cv2.imwrite(str(root / "masks" / f"s{i}.png"), mask)
        cv2.imwrite(str(root / "images" / f"s{i}.png"), image)
        rows.append(f"s{i}.png,{'defective' if bad else 'good'}")
    (root / "truth.csv").write_text("\n".join(rows) + "\n")
    return root


def anomaly_report(root, images, truth, masks, out):
    result = replay("--model", ANOMALY, "--images", images, "--truth", truth, "--masks", masks, "--out", out)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "report.json").read_text())


def test_symlinked_images_and_masks_replay_as_their_files(surfaces, tmp_path):
    plain = anomaly_report(surfaces, surfaces / "images", surfaces / "truth.csv", surfaces / "masks", tmp_path / "a")
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for p in (surfaces / "images").iterdir():
        os.symlink(p, images / p.name)
    for p in (surfaces / "masks").iterdir():
        os.symlink(p, masks / p.name)
    linked = anomaly_report(surfaces, images, surfaces / "truth.csv", masks, tmp_path / "b")
    for key in ["images", "defective_images", "image_auroc", "scores", "pixel"]:
        assert linked[key] == plain[key], key
    assert plain["pixel"]["defective_pixels"] == 3 * 40 * 40
    # A dangling link where a mask should be: an error naming it, before any frame.
    os.remove(masks / "s1.png")
    os.symlink(tmp_path / "nowhere.png", masks / "s1.png")
    result = replay("--model", ANOMALY, "--images", images, "--truth", surfaces / "truth.csv", "--masks", masks)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "s1.png" in result.stderr and "replaying" not in result.stderr, result.stderr


def test_truth_naming_files_outside_the_folder_is_matched_by_base_name(surfaces, tmp_path):
    """`../outside/s1.png` in the truth names the folder's s1.png; the file outside (a different,
    brighter image) is never read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    cv2.imwrite(str(outside / "s1.png"), np.full((128, 224, 3), 255, np.uint8))
    rows = (surfaces / "truth.csv").read_text().splitlines()
    rows = [rows[0]] + [f"../../{outside.name}/{r}" if r.startswith("s1.png") else r for r in rows[1:]]
    truth = tmp_path / "truth.csv"
    truth.write_text("\n".join(rows) + "\n")
    plain = anomaly_report(surfaces, surfaces / "images", surfaces / "truth.csv", surfaces / "masks", tmp_path / "a")
    report = anomaly_report(surfaces, surfaces / "images", truth, surfaces / "masks", tmp_path / "b")
    assert report["scores"] == plain["scores"]
    row = next(r for r in report["scores"] if r["file_name"] == "s1.png")
    assert row["score"] < 9.9, "the bright file outside the folder was not read"
    assert not any(".." in r["file_name"] for r in report["scores"])


def test_a_200000_deep_json_truth_is_refused_not_a_crash(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "f000.png"), np.zeros((64, 64, 3), np.uint8))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    result = replay("--model", SQUARES, "--images", images, "--truth", deep)
    assert result.returncode == 1, (result.returncode, result.stderr[-500:])
    assert "deep.json" in result.stderr and "not valid JSON" in result.stderr, result.stderr[-500:]
    nested = tmp_path / "nested.json"
    nested.write_text('{"images": ' + '{"a": ' * 200_000 + "1" + "}" * 200_000 + "}")
    result = replay("--model", SQUARES, "--images", images, "--truth", nested)
    assert result.returncode == 1 and "nested.json" in result.stderr, (result.returncode, result.stderr[-500:])


HOSTILE = ["```</pre><script>alert(1)</script>", "<img src=x onerror=alert(2)> **bold** [link](http://x)"]


def test_markdown_and_html_class_names_stay_inside_the_reports_code_block(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for k in range(2):
        image = np.full((256, 256, 3), 12, np.uint8)
        image[64 : 96, 32 + 64 * k : 64 + 64 * k] = (255, 255, 255) if k == 0 else (0, 0, 255)
        cv2.imwrite(str(images / f"f{k:03d}.png"), image)
        (labels / f"f{k:03d}.txt").write_text(f"{k} {(48 + 64 * k) / 256} {80 / 256} {32 / 256} {32 / 256}\n")
    names = tmp_path / "names.txt"
    names.write_text("".join(n + "\n" for n in HOSTILE))
    out = tmp_path / "out"
    result = replay("--model", SQUARES, "--labels", names, "--images", images, "--truth", labels, "--out", out)
    assert result.returncode == 0, result.stderr
    md = (out / "report.md").read_text()
    assert "alert(1)" in md and "alert(2)" in md, md
    # Every hostile name sits inside the one fenced code block (CommonMark: only a line of
    # nothing but a fence at least as long as the opening one closes it; a table row starting
    # with backticks goes on with its figures, so it never does).
    lines = md.splitlines()
    opening = next(i for i, line in enumerate(lines) if re.match(r"^ {0,3}`{3,}", line))
    fence = re.match(r"^ {0,3}(`+)", lines[opening]).group(1)
    closing = next(i for i in range(opening + 1, len(lines))
                   if re.fullmatch(r" {0,3}(`+)[ \t]*", lines[i]) and len(lines[i].strip()) >= len(fence))
    inside = "\n".join(lines[opening + 1 : closing])
    assert all(name in inside for name in HOSTILE), md
    outside = "\n".join(lines[:opening] + lines[closing + 1 :])
    assert "<script" not in outside and "onerror" not in outside and "`" not in outside, md
    # The JSON report holds the names as plain strings.
    report = json.loads((out / "report.json").read_text())
    assert [c["name"] for c in report["classes"]] == HOSTILE
