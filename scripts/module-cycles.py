#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Lists the module-level `use crate::...` / `use super::...` edges (and inline
`crate::`/`super::` paths) between the modules of each crate of the workspace (one module per
file under its src/: the plugin's src/, crates/defect-engine/src, crates/defect-replay/src)
and reports every import circle. Circles between crates cannot exist (cargo refuses them).

Usage: scripts/module-cycles.py [--edges] [src-dir]
Exit status 1 when a circle exists. Only `use` items outside `#[cfg(test)]` modules count;
a module declaring a child (`mod x;`) is not an import.
"""
import os
import re
import sys


def module_of(path, src):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib"):
        rel = rel[:-1]
    if rel and rel[0] == "bin":
        return None
    return tuple(rel)


def strip_tests(text):
    """Drops `#[cfg(test)] mod x { ... }` blocks (brace matched) and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def expand(tree):
    """`a::{b, c::{d}}` -> ["a::b", "a::c::d"]."""
    tree = tree.replace(" ", "").replace("\n", "")
    m = re.match(r"^(.*?)::\{(.*)\}$", tree)
    if not m:
        return [tree]
    prefix, body = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur:
        parts.append(cur)
    return [p for part in parts if part for p in expand(prefix + "::" + part)]


CRATES = ["src", "crates/defect-engine/src", "crates/defect-replay/src"]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = os.path.join(os.path.dirname(__file__), "..")
    status = 0
    for src in args or [os.path.join(root, c) for c in CRATES]:
        if len(args) != 1:
            print(f"== {os.path.relpath(src, root)}")
        status |= crate_cycles(src)
    return status


def crate_cycles(src):
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                mod = module_of(path, src)
                if mod is not None:
                    files[mod] = path
    modules = set(files)
    edges = set()
    for mod, path in files.items():
        text = strip_tests(open(path, encoding="utf-8").read())
        items = [
            item
            for m in re.finditer(r"(?m)^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text)
            for item in expand(m.group(1))
        ]
        # Paths written inline (`super::imp::DefectDetect`) are dependencies as well.
        items += re.findall(r"(?<![\w:])(?:crate|super)(?:::\w+)+", text)
        for item in items:
            if True:
                seg = [x for x in item.split("::") if x != "*"]
                if seg and seg[-1] == "self":
                    seg = seg[:-1]
                if seg[0] == "crate":
                    base, seg = [], seg[1:]
                elif seg[0] in ("super", "self"):
                    # `self` is this module, each `super` its parent (for mod.rs files too).
                    base = list(mod)
                    if seg[0] == "self":
                        seg = seg[1:]
                    while seg and seg[0] == "super":
                        base = base[:-1]
                        seg = seg[1:]
                else:
                    continue
                target = tuple(base + seg)
                while target and target not in modules:
                    target = target[:-1]
                if target != mod:
                    edges.add((mod, target))
    name = lambda m: "crate::" + "::".join(m) if m else "crate"
    if "--edges" in sys.argv:
        for a, b in sorted(edges):
            print(f"{name(a)} -> {name(b)}")
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    # Tarjan's strongly connected components: every component of two or more is a circle.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            visit(v)
    print(f"{len(modules)} modules, {len(edges)} import edges, {len(sccs)} circles")
    for comp in sccs:
        inner = sorted((a, b) for a, b in edges if a in comp and b in comp)
        print("circle: " + ", ".join(f"{name(a)} -> {name(b)}" for a, b in inner))
    return 1 if sccs else 0


if __name__ == "__main__":
    sys.exit(main())
