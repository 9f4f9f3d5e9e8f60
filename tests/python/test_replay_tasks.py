"""defect-replay scores classifiers and anomaly models through the element, with known answers:

- the bundled NEU classifier on synthetic textures: its classes are read from onnxruntime with the
  reference preprocessing (training/cls_preprocess.py), the truth labels most images with the
  model's own top-1 class and some with another, so accuracy, top-2 accuracy, per-class figures
  and the confusion matrix are known exactly; --sweep-recall writes per-class min-confidences
  that the element loads;
- the bundled anomaly model on surfaces rendered by training/anomaly.py (its held-out test seeds:
  even indices clean, odd ones defective, with their pixel masks): the image scores, image AUROC
  and pixel AUROC agree with onnxruntime on the element's preprocessing (cv2 INTER_LINEAR
  stretch); --sweep writes the F1-optimal thresholds into [anomaly], and replayed with that
  policy the element FAILs exactly the images the sweep promised;
- bad truth (unknown labels, masks of the wrong size, a good image with a defective mask, a
  defective one without) is refused before the model runs, naming the file, line and reason."""
import json
import os
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import onnxruntime as ort
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
REPLAY = ROOT / "target" / "debug" / "defect-replay"
CLASSIFIER = ROOT / "models" / "neu-classifier.onnx"
ANOMALY = ROOT / "models" / "surface-anomaly.onnx"
sys.path.insert(0, str(ROOT / "training"))
from cls_preprocess import classify_preprocess  # noqa: E402

NEU = ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]


def replay(*args, check=True):
    progress = [] if "--progress" in args else ["--progress", "none"]
    result = subprocess.run([str(REPLAY), *progress, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def auroc(pos, neg):
    pos, neg = np.asarray(pos, np.float64), np.sort(np.asarray(neg, np.float64))
    below = np.searchsorted(neg, pos, side="left")
    upto = np.searchsorted(neg, pos, side="right")
    return float((below + 0.5 * (upto - below)).sum() / (len(pos) * len(neg)))


# ----------------------------------------------------------------------------- classifier
@pytest.fixture(scope="module")
def textures(tmp_path_factory):
    """Synthetic grey textures (200x200, as NEU's) and the model's probabilities for each."""
    root = tmp_path_factory.mktemp("cls")
    images = root / "images"
    images.mkdir()
    sess = ort.InferenceSession(str(CLASSIFIER), providers=["CPUExecutionProvider"])
    size = sess.get_inputs()[0].shape[2]
    rng = np.random.default_rng(3)
    kept = []
    for k in range(40):
        base = rng.normal(128, rng.uniform(5, 40), (200, 200))
        kind = k % 4
        if kind == 0:  # stripes
            base += 40 * np.sin(np.arange(200) / rng.uniform(2, 9))[None, :]
        elif kind == 1:  # blobs
            for _ in range(int(rng.integers(3, 12))):
                cv2.circle(base, (int(rng.integers(0, 200)), int(rng.integers(0, 200))), int(rng.integers(3, 15)),
                           float(rng.uniform(20, 90)), -1)
        elif kind == 2:  # scratches
            for _ in range(int(rng.integers(1, 4))):
                x = int(rng.integers(10, 190))
                cv2.line(base, (x, 0), (x + int(rng.integers(-30, 30)), 199), 230.0, int(rng.integers(1, 4)))
        base = cv2.GaussianBlur(base, (0, 0), rng.uniform(0.5, 2.0))
        grey = np.clip(base, 0, 255).astype(np.uint8)
        bgr = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
        p = sess.run(None, {"images": classify_preprocess(bgr[..., ::-1].copy(), size)})[0][0]
        order = np.argsort(-p)
        if p[order[0]] - p[order[1]] < 0.05 or p[order[1]] - p[order[2]] < 0.02:
            continue  # near ties could go either way on float rounding
        name = f"t{k:02d}.png"
        cv2.imwrite(str(images / name), bgr)
        kept.append((name, p))
        if len(kept) == 12:
            break
    assert len(kept) >= 8, "not enough unambiguous textures"
    return root, kept


def test_classifier_accuracy_per_class_figures_and_confusion(textures, tmp_path):
    root, kept = textures
    # Truth: the model's top-1 for most images; its second class for every third (a miss that
    # top-2 still finds).
    truth = []
    for i, (name, p) in enumerate(kept):
        order = np.argsort(-p)
        truth.append((name, int(order[1] if i % 3 == 0 else order[0])))
    (tmp_path / "truth.csv").write_text("file,label\n" + "".join(f"{n},{NEU[c]}\n" for n, c in truth))
    out = tmp_path / "out"
    result = replay("--model", CLASSIFIER, "--images", root / "images", "--truth", tmp_path / "truth.csv",
                    "--top-k", "2", "--out", out)
    report = json.loads((out / "report.json").read_text())
    top1 = [int(np.argmax(p)) for _, p in kept]
    expected_accuracy = np.mean([t == p for (_, t), p in zip(truth, top1)])
    assert report["task"] == "classify"
    assert report["images"] == len(kept)
    assert report["accuracy"] == pytest.approx(expected_accuracy)
    assert report["top_k"] == {"k": 2, "accuracy": pytest.approx(1.0)}
    confusion = np.zeros((6, 6), int)
    for (_, t), p in zip(truth, top1):
        confusion[p][t] += 1
    assert report["confusion_matrix"]["rows"] == "predicted"
    assert report["confusion_matrix"]["counts"] == confusion.tolist()
    for c, row in enumerate(report["classes"]):
        tp, predicted, support = confusion[c][c], confusion[c].sum(), confusion[:, c].sum()
        assert row["images"] == support and row["predicted"] == predicted
        assert row["precision"] == pytest.approx(tp / predicted if predicted else 0.0)
        assert row["recall"] == pytest.approx(tp / support if support else 0.0)
    # Confidences are the model's probabilities (the element applies no softmax to a distribution).
    for prediction, (_, p) in zip(report["predictions"], kept):
        assert prediction["classes"][0]["confidence"] == pytest.approx(float(p.max()), abs=2e-3)
    assert f"top-1 accuracy {expected_accuracy:.4f}" in result.stdout
    assert "confusion matrix (rows predicted, columns truth)" in result.stdout
    assert (out / "report.md").exists() and (out / "confusion.png").exists()


def test_classifier_sweep_writes_min_confidences_the_element_loads(textures, tmp_path):
    root, kept = textures
    truth = [(name, int(np.argmax(p))) for name, p in kept]
    (tmp_path / "truth.csv").write_text("".join(f"{n},{NEU[c]}\n" for n, c in truth))
    replay("--model", CLASSIFIER, "--images", root / "images", "--truth", tmp_path / "truth.csv",
           "--sweep-recall", "0.5", "--out", tmp_path / "sweep")
    policy = (tmp_path / "sweep" / "swept-policy.toml").read_text()
    assert "--sweep-recall 0.5 for classifier" in policy
    # Per class found: the confidence of the images that reach half its recall, with precision 1
    # (the truth is the model's own top-1).
    import tomllib
    parsed = tomllib.loads(policy)
    for c in sorted({c for _, c in truth}):
        confidences = sorted((float(p.max()) for (_, t), (_, p) in zip(truth, kept) if t == c), reverse=True)
        need = int(np.ceil(0.5 * len(confidences)))
        assert parsed["classes"][NEU[c]]["min-confidence"] == pytest.approx(confidences[need - 1], abs=2e-3)
    # The element loads it: a replay with it runs, and FAILs exactly the images at or above their
    # class's new threshold.
    result = replay("--model", CLASSIFIER, "--images", root / "images", "--truth", tmp_path / "truth.csv",
                    "--policy", tmp_path / "sweep" / "swept-policy.toml", "--task", "classify", "--out", tmp_path / "again")
    report = json.loads((tmp_path / "again" / "report.json").read_text())
    fails = sum(float(p.max()) >= parsed["classes"].get(NEU[int(np.argmax(p))], {"min-confidence": 2})["min-confidence"] - 1e-6
                for _, p in kept)
    assert report["frames"]["fail"] == fails, result.stdout


# ----------------------------------------------------------------------------- anomaly
@pytest.fixture(scope="module")
def surfaces(tmp_path_factory):
    """8 surfaces of the anomaly model's held-out test seeds (4 clean, 4 defective), masks, the
    model's score and map for each (onnxruntime, the element's stretch preprocessing)."""
    import anomaly as A

    root = tmp_path_factory.mktemp("anomaly")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    sess = ort.InferenceSession(str(ANOMALY), providers=["CPUExecutionProvider"])
    rows, items = ["file,label"], []
    for i in range(8):
        bgr, mask = A.render("test", i)
        name = f"s{i}"
        cv2.imwrite(str(root / "images" / f"{name}.png"), bgr)
        if mask.any():
            cv2.imwrite(str(root / "masks" / f"{name}.png"), mask.astype(np.uint8) * 255)
        rows.append(f"{name}.png,{'defective' if mask.any() else 'good'}")
        score, amap = sess.run(None, {"images": A.to_input(bgr)})
        items.append((name, bool(mask.any()), float(np.ravel(score)[0]), amap[0, 0], mask))
    (root / "truth.csv").write_text("\n".join(rows) + "\n")
    return root, items


def test_anomaly_image_and_pixel_auroc_agree_with_onnxruntime(surfaces, tmp_path):
    root, items = surfaces
    result = replay("--model", ANOMALY, "--images", root / "images", "--truth", root / "truth.csv",
                    "--masks", root / "masks", "--out", tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["task"] == "anomaly"
    assert report["images"] == 8 and report["defective_images"] == 4
    for row, (name, bad, score, _, _) in zip(report["scores"], items):
        assert row["file_name"] == f"{name}.png" and row["defective"] == bad
        assert row["score"] == pytest.approx(score, rel=0.02, abs=0.02)
    expected = auroc([s for _, b, s, _, _ in items if b], [s for _, b, s, _, _ in items if not b])
    assert report["image_auroc"] == pytest.approx(expected, abs=1e-9 if expected in (0.0, 1.0) else 0.07)
    pos, neg = [], []
    for _, _, _, amap, mask in items:
        full = cv2.resize(amap, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_LINEAR)
        pos.append(full[mask])
        neg.append(full[~mask])
    pixel = report["pixel"]
    assert pixel["pixels"] == sum(m.size for *_, m in items)
    assert pixel["defective_pixels"] == sum(int(m.sum()) for *_, m in items)
    assert pixel["auroc"] == pytest.approx(auroc(np.concatenate(pos), np.concatenate(neg)), abs=0.01)
    best = report["image_threshold_f1_optimal"]
    assert best["tp"] + best["fn"] == 4 and best["fp"] + best["tn"] == 4
    assert "image AUROC" in result.stdout and "pixel AUROC" in result.stdout


def test_anomaly_sweep_policy_loads_and_keeps_its_promise(surfaces, tmp_path):
    root, items = surfaces
    (tmp_path / "base.toml").write_text('[anomaly]\nseverity = "critical"\n')
    result = replay("--model", ANOMALY, "--images", root / "images", "--truth", root / "truth.csv",
                    "--masks", root / "masks", "--pixel-stride", "2", "--sweep", "--policy", tmp_path / "base.toml",
                    "--out", tmp_path / "sweep")
    report = json.loads((tmp_path / "sweep" / "report.json").read_text())
    best = report["image_threshold_f1_optimal"]
    import tomllib
    text = (tmp_path / "sweep" / "swept-policy.toml").read_text()
    policy = tomllib.loads(text)
    assert policy["anomaly"]["image-threshold"] == pytest.approx(best["threshold"], rel=1e-6)
    assert policy["anomaly"]["pixel-threshold"] == pytest.approx(report["pixel"]["threshold_f1_optimal"]["threshold"],
                                                                rel=1e-6)
    assert policy["anomaly"]["severity"] == "critical", "the rest of --policy is kept"
    assert "anomaly sweep: image-threshold" in result.stdout
    # Replayed with the swept policy, the element fails exactly the images the sweep counted as
    # anomalous (TP + FP), and escapes exactly its FN.
    replay("--model", ANOMALY, "--images", root / "images", "--truth", root / "truth.csv",
           "--policy", tmp_path / "sweep" / "swept-policy.toml", "--out", tmp_path / "again")
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert again["frames"]["fail"] == best["tp"] + best["fp"]
    assert again["frames"]["false_rejects"] == best["fp"]
    assert again["frames"]["escapes"] == best["fn"]


def test_empty_mask_of_a_defective_image_is_refused_or_scored_at_image_level_only(surfaces, tmp_path):
    """A defective image whose mask is empty: refused by default; with --empty-masks image-only it
    keeps its label for the image figures and verdicts, and is left out of the pixel figures."""
    root, items = surfaces
    masks = tmp_path / "masks"
    masks.mkdir()
    empty = next(name for name, bad, *_ in items if bad)
    for name, bad, *_, mask in items:
        if bad:
            cv2.imwrite(str(masks / f"{name}.png"), np.zeros(mask.shape, np.uint8) if name == empty
                        else mask.astype(np.uint8) * 255)
    args = ("--model", ANOMALY, "--images", root / "images", "--truth", root / "truth.csv", "--masks", masks)
    result = replay(*args, check=False)
    assert result.returncode == 1
    assert f"mask of {empty}.png" in result.stderr and "is empty but the image is labelled defective" in result.stderr
    assert "--empty-masks" in result.stderr and "replaying" not in result.stderr
    result = replay(*args, "--empty-masks", "image-only", "--out", tmp_path / "out")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    full = replay("--model", ANOMALY, "--images", root / "images", "--truth", root / "truth.csv",
                  "--masks", root / "masks", "--out", tmp_path / "full")
    reference = json.loads((tmp_path / "full" / "report.json").read_text())
    assert report["defective_images"] == 4 and report["image_auroc"] == reference["image_auroc"]
    assert report["frames"] == reference["frames"]
    assert [r["verdict"] for r in report["scores"]] == [r["verdict"] for r in reference["scores"]]
    assert {r["verdict"] for r in report["scores"]} <= {"PASS", "FAIL", "REVIEW", "UNKNOWN"}
    kept = [(bad, amap, mask) for name, bad, _, amap, mask in items if name != empty]
    assert report["pixel"]["image_only_images"] == 1 and reference["pixel"]["image_only_images"] == 0
    assert report["pixel"]["pixels"] == sum(m.size for *_, m in kept)
    assert report["pixel"]["defective_pixels"] == sum(int(m.sum()) for *_, m in kept)
    full = [(cv2.resize(a, (m.shape[1], m.shape[0]), interpolation=cv2.INTER_LINEAR), m) for _, a, m in kept]
    pos, neg = np.concatenate([f[m] for f, m in full]), np.concatenate([f[~m] for f, m in full])
    assert report["pixel"]["auroc"] == pytest.approx(auroc(pos, neg), abs=0.01)
    assert "leave out 1 defective images whose mask is empty" in result.stdout, result.stdout
    # Without --masks the option means nothing: said, not ignored.
    result = replay("--model", ANOMALY, "--images", root / "images", "--truth", root / "truth.csv",
                    "--empty-masks", "image-only", check=False)
    assert result.returncode == 1 and "--empty-masks: only with --masks" in result.stderr, result.stderr


def test_bad_image_truth_and_masks_are_refused_before_the_model_runs(surfaces, tmp_path):
    root, items = surfaces
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\ns0.png,good\ns1.png,broken\ns2.png\n")
    result = replay("--model", ANOMALY, "--images", root / "images", "--truth", bad, check=False)
    assert result.returncode == 1
    assert "bad.csv: line 4: 1 fields where `file,label` has 2" in result.stderr, result.stderr
    bad.write_text("file,label\ns0.png,good\ns1.png,broken\n")
    result = replay("--model", ANOMALY, "--images", root / "images", "--truth", bad, check=False)
    assert 'line 3: label "broken" of s1.png is neither "good" nor "defective"' in result.stderr, result.stderr
    # Masks: one of the wrong size, one marking a good image, a defective image without one.
    masks = tmp_path / "masks"
    masks.mkdir()
    for name, bad_, *_ in items:
        if bad_:
            mask = cv2.imread(str(root / "masks" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
            cv2.imwrite(str(masks / f"{name}.png"), mask)
    os.remove(masks / "s1.png")
    shape = cv2.imread(str(root / "images" / "s3.png")).shape
    cv2.imwrite(str(masks / "s3.png"), np.full((shape[0] + 1, shape[1]), 255, np.uint8))
    shape0 = cv2.imread(str(root / "images" / "s0.png")).shape
    cv2.imwrite(str(masks / "s0.png"), np.full(shape0[:2], 7, np.uint8))
    result = replay("--model", ANOMALY, "--images", root / "images", "--truth", root / "truth.csv", "--masks", masks,
                    "--progress", "lines", check=False)
    assert result.returncode == 1
    assert "mask of s1.png: no s1.png: a defective image needs a mask" in result.stderr, result.stderr
    assert f"but the image is {shape[1]}x{shape[0]}" in result.stderr, result.stderr
    assert "but the image is labelled good" in result.stderr, result.stderr
    assert "replaying" not in result.stderr
    # A class the classifier does not have, and options of another task.
    cls = tmp_path / "cls.csv"
    cls.write_text("".join(f"{n}.png,{'crazing' if i else 'rust'}\n" for i, (n, *_) in enumerate(items)))
    result = replay("--model", CLASSIFIER, "--images", root / "images", "--truth", cls, check=False)
    assert 'line 1: s0.png: label "rust" is not a class of the model' in result.stderr, result.stderr
    result = replay("--model", CLASSIFIER, "--images", root / "images", "--truth", cls, "--masks", masks, "--sweep",
                    check=False)
    assert "--masks: only for anomaly models (this one is classify)" in result.stderr, result.stderr
    assert "use --sweep-recall" in result.stderr, result.stderr
    # --task is the element's `task` property: a classifier run as an anomaly model is refused by
    # the element (its output is no anomaly map), before any frame.
    result = replay("--model", CLASSIFIER, "--images", root / "images", "--truth", root / "truth.csv",
                    "--task", "anomaly", check=False)
    assert result.returncode == 1 and "defectdetect" in result.stderr, result.stderr
    assert "replayed" not in result.stderr
