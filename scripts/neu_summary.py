#!/usr/bin/env python3
"""Summarises the NEU-DET reports written by scripts/model_card_figures.sh into the model card's
tables (markdown): per-class figures, escapes, perturbations.

    python scripts/neu_summary.py out/model-card/neu
"""
import json
import os
import sys


def load(d, name):
    p = os.path.join(d, name, "report.json")
    return json.load(open(p)) if os.path.exists(p) else None


def main():
    d = sys.argv[1]
    pr, ap = load(d, "test"), load(d, "test-ap")
    if pr and ap:
        print("| class | truths | precision @0.25 | recall @0.25 | F1 @0.25 | AP@0.5 | AP@0.5:0.95 |")
        print("|---|---|---|---|---|---|---|")
        for a, b in zip(pr["classes"], ap["classes"]):
            print(f"| {a['name']} | {a['truths']} | {a['precision']:.3f} | {a['recall']:.3f} | {a['f1']:.3f} "
                  f"| {b['ap50']:.3f} | {b['ap50_95']:.3f} |")
        print(f"| **all** | | | | | **{ap['map50']:.3f}** | **{ap['map50_95']:.3f}** |")
        print(f"\nlatency per image p50 {ap['latency_ms']['p50']:.2f} ms, p99 {ap['latency_ms']['p99']:.2f} ms\n")
    for name, label in (("test-policy", "pipelines/policy.toml classes (no region)"),
                        ("test-swept-policy", "policy swept on validation for recall 0.99")):
        r = load(d, name)
        if r:
            f = r["frames"]
            print(f"- {label}: {f['total']} test images, {f['defective']} defective, FAIL {f['fail']}, "
                  f"REVIEW {f['review']}, escapes (PASS) {f['escapes']} = {f['escapes'] / max(f['defective'], 1):.1%}")
    for name, label in (("synthetic-policy", "pipelines/policy.toml classes (no region)"),
                        ("synthetic-swept-policy", "policy swept on validation for recall 0.99")):
        r = load(d, name)
        if r:
            f = r["frames"]
            clean = f["total"] - f["defective"]
            print(f"- {label} on the synthetic test split: {clean} clean images, false rejects "
                  f"{f['false_rejects']} = {f['false_rejects'] / max(clean, 1):.1%}")
    lat = {}
    for entry in sorted(os.listdir(d)):
        if entry.startswith("latency-"):
            r = load(d, entry)
            if r:
                lat.setdefault(entry[len("latency-"):].rsplit("-", 1)[0], []).append(r["latency_ms"]["p50"])
    if lat:
        print("\n| model | p50 latency per 1280x720 frame, each run (ms) |")
        print("|---|---|")
        for tag, values in lat.items():
            print(f"| {tag} | {', '.join(f'{v:.2f}' for v in values)} |")
    rows = []
    for entry in sorted(os.listdir(d)):
        if entry.startswith("perturbed-"):
            r = load(d, entry)
            if r:
                rows.append((entry[len("perturbed-"):], r["map50"], r["map50_95"]))
    if rows:
        print("\n| perturbation | mAP@0.5 | mAP@0.5:0.95 |")
        print("|---|---|---|")
        if ap:
            print(f"| none (test split) | {ap['map50']:.3f} | {ap['map50_95']:.3f} |")
        for name, m, m2 in rows:
            print(f"| {name} | {m:.3f} | {m2:.3f} |")


if __name__ == "__main__":
    main()
