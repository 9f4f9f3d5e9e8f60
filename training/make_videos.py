#!/usr/bin/env python3
"""Render the recorded-inspection test videos (conveyor of plates/panels) + COCO truth.

    python training/make_videos.py --out tests/data

Writes, per video, <name>.mp4 (H.264, 1280x720, 30 fps, 300 frames, encoded with
GStreamer's x264enc + mp4mux through gst-launch-1.0) and <name>.coco.json, and updates
tests/data/README.md's part tables.  Same renderer as training/generate.py (numpy +
OpenCV); seeded by generate.GENERATOR_SEED and the "video" split seed.

Parts are rendered at half the frame resolution (the model's scale: 1280x720 frames are
letterboxed to 640x360 inside the 384x640 input) and upscaled x2, so every defect is at
least ~24 px in the frame and ~12 px at the model input.
"""
import argparse
import json
import os
import subprocess
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as G  # noqa: E402

W, H, FPS, FRAMES = 1280, 720, 30, 300
UP = 2  # parts rendered at 1/UP resolution, then upscaled

VIDEOS = [
    # name, mono, surface kinds for the parts, speed px/frame, per-part defect class lists
    dict(name="conveyor_color", mono=False, seed_offset=0, speed=24, pitch=1400, first_x=-100,
         kinds=["painted", "rolled", "plastic", "brushed", "cast", "painted"],
         parts=[[5, 1], [], [0, 2, 3], [4], [], [1, 5]]),
    dict(name="conveyor_mono", mono=True, seed_offset=1, speed=24, pitch=1400, first_x=-100,
         kinds=["rolled", "cast", "brushed", "rolled", "plastic", "cast"],
         parts=[[3, 4], [], [2, 5], [0], [1, 4], []]),
]


def render_video_parts(rng, spec):
    parts = []
    for pid, (kind, classes) in enumerate(zip(spec["kinds"], spec["parts"])):
        pw, ph = int(rng.integers(240, 281)), int(rng.integers(165, 196))  # half-res size
        colour = np.ones(3, np.float32) if spec["mono"] else G.random_colour(rng, kind)
        # render the requested classes one by one so each appears exactly once
        surf, alpha, defs = G.render_part(rng, ph, pw, kind, colour, 0)
        edge = 8
        boxes = []
        for c in classes:
            got = G.add_defects(rng, surf, (edge, edge, pw - edge, ph - edge), 1, existing=[b[1:] for b in boxes],
                                classes=[c], orient=0.0)
            boxes += got
        big = cv2.resize(surf, (pw * UP, ph * UP), interpolation=cv2.INTER_CUBIC)
        a = cv2.resize(alpha, (pw * UP, ph * UP), interpolation=cv2.INTER_LINEAR)
        boxes = [(c, x0 * UP, y0 * UP, x1 * UP, y1 * UP) for c, x0, y0, x1, y1 in boxes]
        parts.append(dict(id=pid, kind=kind, img=np.clip(big, 0, 1.2), alpha=a, boxes=boxes,
                          y=int((H - ph * UP) / 2 + rng.integers(-30, 31))))
    return parts


def make_video(spec, out_dir, seed):
    rng = np.random.default_rng([G.GENERATOR_SEED, seed, spec["seed_offset"]])
    parts = render_video_parts(rng, spec)
    _, belt = G.render_belt(rng, H, W, belt_tone=0.16)
    light = G.apply_lighting(rng, np.ones((H, W, 3), np.float32))[..., 0]
    light = 0.85 * light / light.mean() + 0.15
    speed, pitch = spec["speed"], spec["pitch"]
    mp4 = os.path.join(out_dir, spec["name"] + ".mp4")
    cmd = ["gst-launch-1.0", "-q", "fdsrc", "fd=0", "blocksize=%d" % (W * H * 3), "!",
           "rawvideoparse", f"width={W}", f"height={H}", "format=bgr", f"framerate={FPS}/1", "!",
           "videoconvert", "!", "video/x-raw,format=I420", "!",
           "x264enc", "bitrate=%d" % (2000 if spec["mono"] else 2600), "speed-preset=slow", "key-int-max=60",
           "bframes=0", "!",
           "video/x-h264,profile=main", "!", "mp4mux", "!", "filesink", f"location={mp4}"]
    enc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    images, anns, frames_info = [], [], []
    ann_id = 1
    for f in range(FRAMES):
        frame, _ = G.render_belt(rng, H, W, offset=f * speed, fixed=belt)
        visible = []
        for p in parts:
            ph, pw = p["alpha"].shape
            x = spec["first_x"] + f * speed - p["id"] * pitch  # moving left -> right
            if x + pw <= 0 or x >= W:
                continue
            G.composite(frame, p["img"], p["alpha"], x, p["y"])
            vis = (min(W, x + pw) - max(0, x)) / pw
            visible.append((p, x, vis))
        frame *= light[..., None]
        frame = cv2.GaussianBlur(frame, (0, 0), 0.6)
        noise = rng.standard_normal((H, W, 1) if spec["mono"] else (H, W, 3)).astype(np.float32)
        frame = np.clip(frame + 0.006 * noise, 0, 1)
        bgr = G.to_uint8_bgr(frame, spec["mono"])
        enc.stdin.write(bgr.tobytes())
        # truth
        primary = None
        if visible:
            primary = min(visible, key=lambda t: abs(t[1] + t[0]["alpha"].shape[1] / 2 - W / 2))[0]["id"]
        frame_boxes = []
        for p, x, vis in visible:
            for c, x0, y0, x1, y1 in p["boxes"]:
                X0, Y0, X1, Y1 = x0 + x, y0 + p["y"], x1 + x, y1 + p["y"]
                cx0, cx1 = max(0, X0), min(W, X1)
                if cx1 - cx0 < 0.5 * (X1 - X0) or cx1 - cx0 < 12:  # under half of the defect in view: no box
                    continue
                bw, bh = cx1 - cx0, Y1 - Y0
                anns.append(dict(id=ann_id, image_id=f, category_id=int(c), bbox=[int(cx0), int(Y0), int(bw), int(bh)],
                                 area=int(bw * bh), iscrowd=0, part_id=p["id"]))
                frame_boxes.append((p["id"], int(c)))
                ann_id += 1
        parts_vis = [dict(part_id=p["id"], bbox=[int(max(0, x)), p["y"], int(min(W, x + p["alpha"].shape[1]) - max(0, x)),
                                                 p["alpha"].shape[0]], visible_fraction=round(float(vis), 3),
                          defective=bool(p["boxes"])) for p, x, vis in visible]
        images.append(dict(id=f, file_name=f"{spec['name']}/{f:06d}.png", width=W, height=H, frame_index=f,
                           part_id=primary if primary is not None else -1,
                           defective=bool(frame_boxes), parts=parts_vis))
        frames_info.append((f, primary, [v[0]["id"] for v in visible], frame_boxes))
    enc.stdin.close()
    if enc.wait() != 0:
        raise SystemExit(f"gst-launch failed for {mp4}")
    coco = dict(
        info=dict(description=f"gst-plugin-defect synthetic conveyor inspection video {spec['name']}.mp4",
                  version="1.0", generator="training/make_videos.py",
                  generator_seed=G.GENERATOR_SEED, video_seed=seed, seed_offset=spec["seed_offset"],
                  width=W, height=H, fps=FPS, frames=FRAMES, mono=spec["mono"]),
        licenses=[],
        images=images, annotations=anns,
        categories=[dict(id=i, name=n, supercategory="defect") for i, n in enumerate(G.CLASSES)],
        parts=[dict(part_id=p["id"], surface=p["kind"], defective=bool(p["boxes"]),
                    defects=[G.CLASSES[b[0]] for b in p["boxes"]],
                    frames=[fi for fi, _, vis, _ in frames_info if p["id"] in vis]) for p in parts],
    )
    for p in coco["parts"]:
        fr = p.pop("frames")
        p["first_frame"], p["last_frame"] = (fr[0], fr[-1]) if fr else (None, None)
        prim = [fi for fi, pr, _, _ in frames_info if pr == p["part_id"]]
        p["primary_first_frame"], p["primary_last_frame"] = (prim[0], prim[-1]) if prim else (None, None)
        boxed = [fi for fi, _, _, fb in frames_info if any(pid == p["part_id"] for pid, _ in fb)]
        p["defect_frames"] = [boxed[0], boxed[-1]] if boxed else None
    with open(os.path.join(out_dir, spec["name"] + ".coco.json"), "w") as f:
        json.dump(coco, f, separators=(",", ":"))
    return mp4, coco


def ranges(flags):
    out, start = [], None
    for i, v in enumerate(flags + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i - 1))
            start = None
    return out


def summary_md(name, coco):
    lines = [f"### `{name}.mp4`", "",
             f"{'mono (grey content)' if coco['info']['mono'] else 'colour'}, "
             f"{coco['info']['width']}x{coco['info']['height']}, {coco['info']['fps']} fps, "
             f"{coco['info']['frames']} frames, {len(coco['annotations'])} boxes.", "",
             "| part | surface | defective | defects | visible frames | primary (`part_id`) frames | frames with its boxes |",
             "|---|---|---|---|---|---|---|"]
    for p in coco["parts"]:
        vis = f"{p['first_frame']}–{p['last_frame']}" if p["first_frame"] is not None else "never"
        prim = (f"{p['primary_first_frame']}–{p['primary_last_frame']}"
                if p["primary_first_frame"] is not None else "—")
        dfr = f"{p['defect_frames'][0]}–{p['defect_frames'][1]}" if p["defect_frames"] else "—"
        lines.append(f"| {p['part_id']} | {p['surface']} | {'yes' if p['defective'] else 'no'} | "
                     f"{', '.join(p['defects']) or '—'} | {vis} | {prim} | {dfr} |")
    none = [im["id"] for im in coco["images"] if im["part_id"] == -1]
    defective = ranges([im["defective"] for im in coco["images"]])
    two = ranges([len(im["parts"]) == 2 for im in coco["images"]])
    lines += ["",
              f"Frames with no part (`part_id` -1): {', '.join(f'{a}–{b}' for a, b in ranges([im['part_id'] == -1 for im in coco['images']])) or 'none'} ({len(none)} frames).  ",
              f"Frames with defect boxes (`defective` true): {', '.join(f'{a}–{b}' for a, b in defective)} "
              f"({sum(im['defective'] for im in coco['images'])} frames).  ",
              f"Frames showing two parts: {', '.join(f'{a}–{b}' for a, b in two) or 'none'}.", ""]
    return "\n".join(lines)


README = """# Test data: recorded conveyor inspections

<!-- generated by training/make_videos.py; regenerate with
     `.venv-train/bin/python training/make_videos.py --out tests/data` (or training/retrain.sh) -->

Synthetic recordings of rectangular plates and panels passing under a fixed camera on a
conveyor, made with the training data generator (`training/generate.py`, same surfaces and
defect renderers, seeded: generator seed 20240611, video seed 4000).  The parts move left to
right at 24 px per frame; a part is in view for about 75 frames, and at most two parts are in
view at once (while one leaves and the next enters).  Some parts are clean, some carry one to
three defects of the six NEU classes.  Parts are rendered at half the frame resolution and
upscaled, so defects are at least ~24 px in the frame (~12 px after the letterbox to the
model's 384x640 input).

| file | content |
|---|---|
| `conveyor_color.mp4` | colour, H.264 (x264, Main profile, no B-frames) in MP4, 1280x720, 30 fps, 300 frames (10 s) |
| `conveyor_mono.mp4` | the same with grey content (R = G = B; decode to GRAY8 for a mono camera) |
| `<video>.coco.json` | ground truth of the video, one COCO JSON |

Decode with `filesrc location=tests/data/conveyor_color.mp4 ! decodebin ! videoconvert ! ...`.

## Ground-truth format (`<video>.coco.json`)

Standard COCO detection JSON plus a few extra fields:

- `info`: generator, seeds, `width`, `height`, `fps`, `frames`, `mono`.
- `images`: one per frame, `id` = frame index (0-based, decode order).  Fields: `file_name`
  (`<video>/<frame:06d>.png`, a name only: no PNGs are stored), `width` 1280, `height` 720,
  and the extras `frame_index` (= `id`), `part_id` (integer id of the part under the camera:
  of the parts in view, the one whose centre is nearest the frame centre; `-1` when no part
  is in view), `defective` (true when the frame has at least one defect box, whichever part it
  is on), `parts` (every part in view: `part_id`, `bbox` [x, y, w, h] of its visible part in
  frame pixels, `visible_fraction` of its width, `defective` = whether the part carries
  defects at all).
- `annotations`: one per visible defect per frame: `image_id` (= frame index), `bbox`
  [x, y, w, h] in frame pixels (top-left origin, clipped to the frame), `category_id`
  (= class id), `area` (w·h), `iscrowd` 0, and the extra `part_id` of the part it is on.
  A defect is annotated while at least half of its width (and at least 12 px) is in view;
  a defect cut by the frame edge is boxed by its visible portion.
- `categories`: `id` = class id, `name`: 0 crazing, 1 inclusion, 2 patches,
  3 pitted_surface, 4 rolled-in_scale, 5 scratches (the model's class order).
- `parts` (extra, top level): per part `part_id`, `surface`, `defective`, `defects` (class
  names), `first_frame`/`last_frame` (in view), `primary_first_frame`/`primary_last_frame`
  (frames whose image `part_id` is this part), `defect_frames` ([first, last] frame with one
  of its boxes, or null).

Part verdicts: a part is defective when its `defective` is true.  Because the image-level
`part_id` names a single part, a frame where a defective part is entering or leaving while
another part is under the camera carries boxes of the other part (use each annotation's
`part_id` to attribute them).

## Videos and parts

{videos}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/data")
    ap.add_argument("--only", default=None, help="render only this video name")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    seed = G.SPLIT_SEEDS["video"]
    md = []
    for spec in VIDEOS:
        if a.only and spec["name"] != a.only:
            continue
        mp4, coco = make_video(spec, a.out, seed)
        print(f"wrote {mp4} ({os.path.getsize(mp4) / 1e6:.2f} MB), {len(coco['images'])} frames, "
              f"{len(coco['annotations'])} boxes, parts: "
              + "; ".join(f"{p['part_id']}:{'+'.join(p['defects']) or 'clean'} {p['first_frame']}-{p['last_frame']}"
                          for p in coco["parts"]))
        md.append(summary_md(spec["name"], coco))
    if not a.only:
        with open(os.path.join(a.out, "README.md"), "w") as f:
            f.write(README.format(videos="\n".join(md)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
