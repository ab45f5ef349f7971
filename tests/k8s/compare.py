#!/usr/bin/env python3
# compare.py — do two renderings of one kustomization hold the same objects?
# Each argument is a JSON array of Kubernetes objects (`kubectl kustomize`
# output turned into JSON, as tests/integration/k8s_render.sh writes it).
# Objects are keyed by (apiVersion, kind, namespace, name) and compared field
# by field, lists in order. Not a semantic diff: a defaulted field or a
# reordered list is a difference.
#
# Generated ConfigMaps and Secrets end in a hash of their content, and kustomize
# v2 and v5 compute it differently: that suffix is replaced by -HASH on both
# sides, where the object is named and wherever it is referenced.
#
# Prints one line (the object count by kind, or the first differences) and
# exits 0 when the renderings agree, 1 when they differ or are empty.
#   python3 compare.py first.json second.json
import json
import re
import sys

HASH = re.compile(r"(.+)-[bcdfghkmt2-9]{10}")


def load(path):
    objs = json.load(open(path))
    text = json.dumps(objs)
    for o in objs:
        m = HASH.fullmatch(o["metadata"]["name"])
        if o["kind"] in ("ConfigMap", "Secret") and m:
            text = text.replace(json.dumps(o["metadata"]["name"]), json.dumps(m.group(1) + "-HASH"))
    return {(o["apiVersion"], o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
            for o in json.loads(text)}


def diff(a, b, path):
    if type(a) is not type(b) or (not isinstance(a, (dict, list)) and a != b):
        yield f"{path}: {json.dumps(a)[:120]} / {json.dumps(b)[:120]}"
    elif isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            yield from diff(a.get(k), b.get(k), f"{path}.{k}")
    elif isinstance(a, list):
        if len(a) != len(b):
            yield f"{path}: {len(a)} items / {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            yield from diff(x, y, f"{path}[{i}]")


def main():
    a, b = load(sys.argv[1]), load(sys.argv[2])
    d = [f"only in the first: {'/'.join(k)}" for k in sorted(a.keys() - b.keys())]
    d += [f"only in the second: {'/'.join(k)}" for k in sorted(b.keys() - a.keys())]
    for k in sorted(a.keys() & b.keys()):
        d += list(diff(a[k], b[k], f"{k[1]}/{k[3]}"))
    if d or not a:
        print(f"{len(d)} differences: " + "; ".join(d[:6]) if d else "nothing rendered")
        return 1
    kinds = {}
    for k in a:
        kinds[k[1]] = kinds.get(k[1], 0) + 1
    print(f"{len(a)} objects identical ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})")
    return 0


sys.exit(main())
