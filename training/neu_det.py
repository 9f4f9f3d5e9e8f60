#!/usr/bin/env python3
"""Convert NEU-DET (Pascal VOC layout) into YOLO labels and COCO truth files, split by file number.

    python training/neu_det.py --src $NEU_DET_DIR --out training/data/neu

NEU-DET (Northeastern University surface defect database, K. Song and Y. Yan) holds 1,800
grey 200x200 images of hot-rolled steel strip named ``<class>_<n>.jpg`` (n = 1..300 per class)
with one Pascal VOC XML file each.  The images and XML are not part of this repository (their
terms are their authors'); ``--src`` is any directory holding them, in any sub-folders (the
public copy in ``siddhartamukherjee/NEU-DET-Steel-Surface-Defect-Detection`` keeps them in
``IMAGES/`` + ``ANNOTATIONS/`` and ``Validation_Images/`` + ``Validation_Annotations/``).

The split is fixed by the file number n: ``n % 10 == 0`` is test, ``n % 10 == 5`` validation,
the rest train.  Every box is kept as the annotations say, ``difficult`` ones included (their
flag is kept as a ``difficult`` field in the COCO annotation); class spellings are normalised
(``rolled_in_scale``, ``Rolled-in Scale`` -> ``rolled-in_scale``).

Output, for each split S:
    OUT/S/images/<name>.jpg   (a copy of the image)
    OUT/S/labels/<name>.txt   (YOLO: class cx cy w h, normalised)
    OUT/S.coco.json           (COCO: file_name is the image's file name, ids stable across runs)
"""
import argparse
import json
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET

CLASSES = ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]
SPLITS = ("train", "val", "test")


def _key(name):
    return re.sub(r"[^a-z]", "", name.lower())


_BY_KEY = {_key(c): i for i, c in enumerate(CLASSES)}
# abbreviations found in some copies' <folder> / file names
_BY_KEY.update({"cr": 0, "in": 1, "pa": 2, "ps": 3, "rs": 4, "sc": 5})


def class_index(name):
    """Index of a NEU class from any of its spellings; None if it is not one."""
    return _BY_KEY.get(_key(name))


def split_of(number):
    """Split of the image with file number n."""
    if number % 10 == 0:
        return "test"
    if number % 10 == 5:
        return "val"
    return "train"


_STEM = re.compile(r"^(?P<cls>.+?)_(?P<n>\d+)$")


def parse_stem(stem):
    """('rolled-in_scale', 12) from 'rolled-in_scale_12'; None when the name has no number."""
    m = _STEM.match(stem)
    if not m:
        return None
    return m.group("cls"), int(m.group("n"))


def parse_voc(path):
    """(file name, width, height, [(class index, x1, y1, x2, y2, difficult)]) of a VOC XML file.

    VOC corners are 1-based inclusive pixel indices; they become 0-based pixel edges
    (x1 = xmin - 1, x2 = xmax), clamped to the image.
    """
    root = ET.parse(path).getroot()
    filename = (root.findtext("filename") or "").strip()
    size = root.find("size")
    width = int(float(size.findtext("width"))) if size is not None else 0
    height = int(float(size.findtext("height"))) if size is not None else 0
    boxes = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        cls = class_index(name)
        if cls is None:
            raise ValueError(f"{path}: unknown class {name!r}")
        bb = obj.find("bndbox")
        if bb is None:
            raise ValueError(f"{path}: object {name!r} without <bndbox>")
        x1, y1, x2, y2 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        difficult = int(float(obj.findtext("difficult") or 0))
        boxes.append([cls, x1 - 1, y1 - 1, x2, y2, difficult])
    return filename, width, height, boxes


def image_size(path):
    """(width, height) read from a JPEG or PNG header (no decoder needed)."""
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        raise ValueError(f"{path}: not a JPEG or PNG image")
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + length
    raise ValueError(f"{path}: no JPEG frame header")


def find_pairs(src):
    """{stem: (image path, xml path)} for every XML file under src with an image beside it
    (in any folder under src)."""
    images, xmls = {}, {}
    for root, _, files in os.walk(src):
        for f in files:
            stem, ext = os.path.splitext(f)
            ext = ext.lower()
            if ext in (".jpg", ".jpeg", ".png", ".bmp"):
                images.setdefault(stem, os.path.join(root, f))
            elif ext == ".xml":
                xmls.setdefault(stem, os.path.join(root, f))
    missing = sorted(set(xmls) - set(images))
    if missing:
        print(f"neu_det: {len(missing)} annotations without an image, e.g. {missing[0]}", file=sys.stderr)
    return {s: (images[s], xmls[s]) for s in sorted(xmls) if s in images}


def convert(src, out, copy_images=True):
    """Writes OUT/<split>/{images,labels} and OUT/<split>.coco.json; returns a summary dict."""
    pairs = find_pairs(src)
    if not pairs:
        raise SystemExit(f"neu_det: no VOC XML files with images under {src}")
    coco = {s: {"info": {"description": "NEU-DET " + s + " split (n % 10: test 0, val 5, train others)"},
                "images": [], "annotations": [],
                "categories": [{"id": i, "name": c} for i, c in enumerate(CLASSES)]}
            for s in SPLITS}
    summary = {s: {"images": 0, "boxes": 0, "difficult": 0, "per_class": [0] * len(CLASSES)} for s in SPLITS}
    for s in SPLITS:
        for sub in ("images", "labels"):
            os.makedirs(os.path.join(out, s, sub), exist_ok=True)
    ann_id = 0
    for stem, (img_path, xml_path) in pairs.items():
        parsed = parse_stem(stem)
        if parsed is None:
            print(f"neu_det: skipping {stem}: not named <class>_<n>", file=sys.stderr)
            continue
        cls_name, number = parsed
        file_cls = class_index(cls_name)
        if file_cls is None:
            print(f"neu_det: skipping {stem}: {cls_name!r} is not a NEU class", file=sys.stderr)
            continue
        split = split_of(number)
        _, xw, xh, boxes = parse_voc(xml_path)
        w, h = image_size(img_path)
        if (xw, xh) not in ((w, h), (0, 0)):
            print(f"neu_det: {xml_path}: size {xw}x{xh} but the image is {w}x{h}; using the image's",
                  file=sys.stderr)
        name = stem + os.path.splitext(img_path)[1].lower()
        image_id = file_cls * 1000 + number  # stable: the same image keeps its id on every run
        coco[split]["images"].append({"id": image_id, "file_name": name, "width": w, "height": h})
        lines = []
        for cls, x1, y1, x2, y2, difficult in boxes:
            x1, y1 = min(max(x1, 0.0), w), min(max(y1, 0.0), h)
            x2, y2 = min(max(x2, 0.0), w), min(max(y2, 0.0), h)
            if x2 <= x1 or y2 <= y1:
                print(f"neu_det: {xml_path}: empty box skipped", file=sys.stderr)
                continue
            bw, bh = x2 - x1, y2 - y1
            coco[split]["annotations"].append({
                "id": ann_id, "image_id": image_id, "category_id": cls,
                "bbox": [x1, y1, bw, bh], "area": bw * bh, "iscrowd": 0, "difficult": difficult})
            ann_id += 1
            lines.append(f"{cls} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {bw / w:.6f} {bh / h:.6f}")
            summary[split]["boxes"] += 1
            summary[split]["difficult"] += difficult
            summary[split]["per_class"][cls] += 1
        summary[split]["images"] += 1
        dst = os.path.join(out, split, "images", name)
        if copy_images and not (os.path.exists(dst) and os.path.getsize(dst) == os.path.getsize(img_path)):
            shutil.copyfile(img_path, dst)
        with open(os.path.join(out, split, "labels", stem + ".txt"), "w") as f:
            f.write("\n".join(lines) + ("\n" if lines else ""))
    for s in SPLITS:
        coco[s]["images"].sort(key=lambda im: im["id"])
        with open(os.path.join(out, f"{s}.coco.json"), "w") as f:
            json.dump(coco[s], f, indent=1)
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", default=os.environ.get("NEU_DET_DIR"),
                    help="directory holding NEU-DET's images and VOC XML files (default: $NEU_DET_DIR)")
    ap.add_argument("--out", default="training/data/neu")
    ap.add_argument("--no-images", action="store_true", help="write labels and COCO files only")
    a = ap.parse_args()
    if not a.src:
        ap.error("--src (or NEU_DET_DIR) is required")
    summary = convert(a.src, a.out, copy_images=not a.no_images)
    for s in SPLITS:
        v = summary[s]
        print(f"{s:5}: {v['images']} images, {v['boxes']} boxes ({v['difficult']} difficult); per class "
              + ", ".join(f"{c} {n}" for c, n in zip(CLASSES, v["per_class"])))


if __name__ == "__main__":
    main()
