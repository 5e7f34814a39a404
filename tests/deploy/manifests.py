"""What the deployment tests' Python checks share (kustomize_test.sh, keda_test.sh).

They run their checks with `PYTHONPATH=tests/deploy python3 - <<'PY'` and import these.
"""
import json
import re


def seconds(duration):
    """A Quern duration (docs/CONFIG.md): 250ms, 30s, 5m, 1h, 2d, or plain seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?", duration)
    if not m:
        raise ValueError(f"not a duration: {duration!r}")
    scale = {None: 1, "ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return float(m.group(1)) * scale


def option(args, name):
    """The value of --name=VALUE or --name VALUE in a container's args, else None."""
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(args):
            return args[i + 1]
    return None


def load_objects(path, drop_label=None):
    """The objects of `kubectl ... -o json` output (documents and Lists, one after another).

    drop_label: a label the test added to have kubectl parse them, removed again.
    """
    text, objects, decoder, i = open(path).read(), [], json.JSONDecoder(), 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        obj, i = decoder.raw_decode(text, i)
        objects.extend(obj.get("items", []) if obj.get("kind") == "List" else [obj])
    if drop_label:
        for obj in objects:
            labels = obj.get("metadata", {}).get("labels") or {}
            labels.pop(drop_label, None)
            if not labels:
                obj.get("metadata", {}).pop("labels", None)
    return objects
