#!/usr/bin/env bash
# Renders deploy/kubernetes/overlays/keda (KEDA scaling every worker group from Quern's own
# decision) and checks, without a cluster:
#   - every worker Deployment has exactly one ScaledObject targeting it, with
#     minReplicaCount 0, and min/maxReplicaCount equal to <autoscale min max> of its group;
#     no ScaledObject targets anything else;
#   - the group of each (its --group in the config the pod mounts) has
#     <autoscale integration="keda">, and each trigger reads that group's decision: metrics-api
#     on http://<server Service>.<namespace>.svc:<API port>/api/autoscaling/groups/<group>,
#     field "desired", target 1 per pod (AverageValue), bearer token from the
#     TriggerAuthentication whose Secret is quern-keda-token/token; or prometheus on
#     quern_autoscale_desired_workers{group="<group>"}, threshold 1;
#   - the HPA behaviour removes one pod at a time after a stabilization window, the scaled
#     Deployments carry no spec.replicas, and terminationGracePeriodSeconds exceeds
#     shutdown-grace + kill-grace (a scale-in hands jobs back instead of killing them);
#   - no Secret is rendered (the token is created by hand); the overlay's quern.xml is the
#     base's apart from <autoscale>, and passes the quern binary's strict parser;
#   - every KEDA object of the render, and those of the overlay's files that are not
#     rendered (scaledobject-gpu-prometheus.yaml), matches KEDA's published schema, unknown
#     fields included (keda_validate.mjs, with the npm package @kubernetes-models/keda).
#
# usage: [KUBECTL=/path/to/kubectl] keda_test.sh SOURCE_DIR QUERN_BINARY [WORK_DIR]
# KUBECTL: the kubectl to render with (default: kubectl in PATH); run it with kubectl 1.20
# and a current one, as kustomize_test.sh. WORK_DIR: where the npm package is installed
# and kept for the next run (default: a temporary folder, removed at exit).
# Exit 77 (CTest: skipped) when kubectl, python3, node or npm is missing.
set -euo pipefail

usage="usage: [KUBECTL=kubectl] keda_test.sh SOURCE_DIR QUERN_BINARY [WORK_DIR]"
root=${1:?$usage}
quern_bin=${2:?$usage}
work_dir=${3:-}
kubectl=${KUBECTL:-kubectl}
k8s=$root/deploy/kubernetes
overlay=$k8s/overlays/keda
validator=$root/tests/deploy/keda_validate.mjs
# KEDA's CRDs as generated models with validators. 0.4.2 is generated from the CRDs of KEDA
# 2.10.1, and runs on Node 14 and later (Debian 12 has 18); 2.0.0 needs Node 22 and cannot
# be require()d.
keda_package=@kubernetes-models/keda
keda_version=0.4.2

for tool in "$kubectl" python3 node npm; do
  if ! command -v "$tool" > /dev/null 2>&1; then
    echo "SKIP: $tool not found"
    exit 77
  fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
work_dir=${work_dir:-$tmp/keda-schema}
failed=0

# Offline: an empty kubeconfig, so that nothing here can reach a cluster.
: > "$tmp/kubeconfig"
export KUBECONFIG=$tmp/kubeconfig
echo "kubectl: $kubectl, $("$kubectl" version --client 2>/dev/null | head -n 1)"

# Current versions warn on stderr about the fields kept for kubectl 1.20; only a failure
# shows it.
if ! "$kubectl" kustomize "$overlay" > "$tmp/render.yaml" 2> "$tmp/render.err"; then
  echo "FAIL: $kubectl kustomize overlays/keda"
  cat "$tmp/render.err"
  exit 1
fi
# YAML to JSON with kubectl's own decoder (--local: no cluster); the label it adds is
# dropped below.
to_json() {
  "$kubectl" label --local -f "$1" -o json keda-test=parsed > "$2" 2> "$tmp/json.err" || {
    echo "FAIL: $1 does not parse"
    cat "$tmp/json.err"
    exit 1
  }
}
to_json "$tmp/render.yaml" "$tmp/render.json"
echo "ok: rendered overlays/keda ($(grep -c '^kind:' "$tmp/render.yaml") objects)"
# The overlay's own files holding KEDA objects, rendered or not.
mkdir "$tmp/files"
for f in "$overlay"/*.yaml; do
  [[ $(basename "$f") == kustomization.yaml ]] && continue
  grep -q '^apiVersion: keda\.sh/' "$f" || continue
  to_json "$f" "$tmp/files/$(basename "$f" .yaml).json"
done

# The structure: Deployments, ScaledObjects, triggers, config. Writes the KEDA objects to
# validate against the schema into keda-objects.json.
PYTHONPATH="$(dirname "${BASH_SOURCE[0]}")" python3 - "$k8s" "$tmp" <<'PY' || failed=1
import json
import os
import re
import sys
import urllib.parse
import xml.etree.ElementTree as ET

from manifests import load_objects, option, seconds

k8s, tmp = sys.argv[1], sys.argv[2]
overlay = f"{k8s}/overlays/keda"
errors = []


def fail(message):
    errors.append(message)


def parse_config(text):
    root = ET.fromstring(text)
    queue = root.find("queue")
    kill_grace = seconds(queue.get("kill-grace", "2s")) if queue is not None else 2.0
    groups = {}
    for g in root.findall("workers/group"):
        a = g.find("autoscale")
        groups[g.get("name", "default")] = None if a is None else dict(a.attrib)
    return {"kill_grace": kill_grace, "groups": groups}


def without_autoscale(path):
    """The config as a comparable tree, comments and <autoscale> left out."""
    def walk(e):
        children = [walk(c) for c in e if c.tag != "autoscale"]
        return (e.tag, sorted(e.attrib.items()), (e.text or "").strip(), children)
    return walk(ET.parse(path).getroot())


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


render = load_objects(f"{tmp}/render.json", "keda-test")
by_kind = {}
for obj in render:
    by_kind.setdefault(obj["kind"], []).append(obj)

# The overlay's quern.xml: the base's plus <autoscale>, nothing else.
if without_autoscale(f"{overlay}/quern.xml") != without_autoscale(f"{k8s}/base/quern.xml"):
    fail("overlays/keda/quern.xml differs from base/quern.xml in more than <autoscale>: "
         "carry the base's change over")

for secret in by_kind.get("Secret", []):
    fail(f"Secret {secret['metadata']['name']} is rendered: the token Secret is created by hand "
         "(keda-token-secret.example.yaml), or an apply would reset it")

configs = {}
for cm in by_kind.get("ConfigMap", []):
    for key, text in (cm.get("data") or {}).items():
        if key.endswith(".xml"):
            configs[(cm["metadata"]["name"], key)] = parse_config(text)

# The API as KEDA reaches it: the Service in front of the server's "http" port.
server = next((d for d in by_kind.get("Deployment", [])
               if (d["spec"]["template"]["spec"]["containers"][0].get("args") or [None])[0] == "server"), None)
api = None
if server is None:
    fail("no server Deployment")
else:
    pod_labels = server["spec"]["template"]["metadata"].get("labels", {})
    container = server["spec"]["template"]["spec"]["containers"][0]
    http_port = next((p["containerPort"] for p in container.get("ports", []) if p.get("name") == "http"), None)
    for svc in by_kind.get("Service", []):
        selector = svc["spec"].get("selector") or {}
        if selector and all(pod_labels.get(k) == v for k, v in selector.items()):
            for p in svc["spec"].get("ports", []):
                if p.get("targetPort") in ("http", http_port):
                    api = (svc["metadata"]["name"], svc["metadata"].get("namespace"), p["port"])
    if api is None:
        fail("no Service reaches the server's http port")

auths = {a["metadata"]["name"]: a for a in by_kind.get("TriggerAuthentication", [])}

# Worker Deployments: group, config, grace.
workers = {}
for dep in by_kind.get("Deployment", []):
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container.get("args", [])
    if not args or args[0] != "worker":
        continue
    name = dep["metadata"]["name"]
    group = option(args, "group")
    config, config_path = None, option(args, "config")
    mounts = {m["name"]: m["mountPath"].rstrip("/") for m in container.get("volumeMounts", [])}
    for vol in pod.get("volumes", []):
        cm, mount = vol.get("configMap"), mounts.get(vol["name"])
        if cm and mount and config_path and config_path.startswith(mount + "/"):
            config = configs.get((cm["name"], config_path[len(mount) + 1:]))
    if config is None or group not in config["groups"]:
        fail(f"Deployment {name}: --group={group} is not a group of the config it mounts ({config_path})")
        continue
    workers[name] = {"dep": dep, "group": group, "autoscale": config["groups"][group]}
    if "replicas" in dep["spec"]:
        fail(f"Deployment {name}: has spec.replicas ({dep['spec']['replicas']}), which every apply would "
             "reset under KEDA's HPA (autoscaled-worker.yaml removes it)")
    shutdown = float(option(args, "shutdown-grace") or 30)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if not grace > shutdown + config["kill_grace"]:
        fail(f"Deployment {name}: terminationGracePeriodSeconds {grace} must exceed shutdown-grace "
             f"{shutdown:g} + kill-grace {config['kill_grace']:g}, or a scale-in kills running jobs")
if not workers:
    fail("no worker Deployment")


def check_trigger(where, trigger, group, auth_by_name):
    metadata = trigger.get("metadata") or {}
    if trigger.get("metricType", "AverageValue") != "AverageValue":
        fail(f"{where}: metricType must be AverageValue (replicas = desired / target), "
             f"is {trigger.get('metricType')}")
    if trigger.get("type") == "metrics-api":
        url = urllib.parse.urlsplit(metadata.get("url", ""))
        path = f"/api/autoscaling/groups/{group}"
        if url.path != path:
            fail(f"{where}: url {metadata.get('url')!r} must GET {path}")
        if api is not None:
            service, namespace, port = api
            hosts = (f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local")
            if url.scheme not in ("http", "https") or url.hostname not in hosts or url.port != port:
                fail(f"{where}: url {metadata.get('url')!r} must reach the server as "
                     f"http://{hosts[0]}:{port} (KEDA runs in another namespace)")
        if metadata.get("valueLocation") != "desired":
            fail(f"{where}: valueLocation must be \"desired\", is {metadata.get('valueLocation')!r}")
        if number(metadata.get("targetValue")) != 1:
            fail(f"{where}: targetValue must be \"1\" (one pod per desired worker), "
                 f"is {metadata.get('targetValue')!r}")
        if metadata.get("authMode") != "bearer":
            fail(f"{where}: authMode must be bearer (the API needs a token), is {metadata.get('authMode')!r}")
        ref = trigger.get("authenticationRef") or {}
        auth = auth_by_name.get(ref.get("name")) if ref.get("kind", "TriggerAuthentication") == "TriggerAuthentication" else None
        if auth is None:
            fail(f"{where}: authenticationRef {ref} names no TriggerAuthentication of the render")
        else:
            refs = auth["spec"].get("secretTargetRef") or []
            if not any(r.get("parameter") == "token" and r.get("name") == "quern-keda-token"
                       and r.get("key") == "token" for r in refs):
                fail(f"{where}: TriggerAuthentication {ref.get('name')} must take the parameter "
                     "\"token\" from the Secret quern-keda-token, key token")
    elif trigger.get("type") == "prometheus":
        query = metadata.get("query", "")
        if f'quern_autoscale_desired_workers{{group="{group}"}}' not in query:
            fail(f"{where}: query {query!r} must read quern_autoscale_desired_workers{{group=\"{group}\"}}")
        if number(metadata.get("threshold")) != 1:
            fail(f"{where}: threshold must be \"1\", is {metadata.get('threshold')!r}")
    else:
        fail(f"{where}: trigger type {trigger.get('type')!r} does not read Quern's decision "
             "(metrics-api or prometheus)")


def check_scaled_object(so, source):
    """The ScaledObject's target, bounds, behaviour and triggers. Returns the Deployment's name."""
    name = so["metadata"]["name"]
    where = f"ScaledObject {name} ({source})"
    spec = so.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    target = ref.get("name")
    if ref.get("kind", "Deployment") != "Deployment" or ref.get("apiVersion", "apps/v1") != "apps/v1" \
            or target not in workers:
        fail(f"{where}: scaleTargetRef {ref} is not a worker Deployment of the render")
        return None
    group, autoscale = workers[target]["group"], workers[target]["autoscale"]
    if spec.get("minReplicaCount") != 0:
        fail(f"{where}: minReplicaCount must be 0, is {spec.get('minReplicaCount')!r}")
    if autoscale is None or autoscale.get("integration") != "keda":
        fail(f"{where}: group {group!r} has no <autoscale integration=\"keda\"> in the config")
    else:
        if spec.get("minReplicaCount") != int(autoscale.get("min", "0")):
            fail(f"{where}: minReplicaCount {spec.get('minReplicaCount')!r} differs from "
                 f"<autoscale min=\"{autoscale.get('min', '0')}\"> of group {group!r}")
        if spec.get("maxReplicaCount") != int(autoscale.get("max", "-1")):
            fail(f"{where}: maxReplicaCount {spec.get('maxReplicaCount')!r} differs from "
                 f"<autoscale max=\"{autoscale.get('max')}\"> of group {group!r}")
    behavior = (((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}).get("behavior") or {})
    down = behavior.get("scaleDown") or {}
    if not down.get("stabilizationWindowSeconds", 0) > 0:
        fail(f"{where}: advanced.horizontalPodAutoscalerConfig.behavior.scaleDown needs a "
             "stabilizationWindowSeconds")
    policies = down.get("policies") or []
    if not policies or any(p.get("type") != "Pods" or p.get("value") != 1 for p in policies):
        fail(f"{where}: behavior.scaleDown.policies must remove one pod at a time (type Pods, value 1)")
    triggers = spec.get("triggers") or []
    if not triggers:
        fail(f"{where}: no trigger")
    for i, trigger in enumerate(triggers):
        check_trigger(f"{where} trigger {i}", trigger, group, auths)
    return target


targets, broken = {}, set()
for so in by_kind.get("ScaledObject", []):
    before = len(errors)
    target = check_scaled_object(so, "render")
    if target:
        targets.setdefault(target, []).append(so["metadata"]["name"])
        if len(errors) > before:
            broken.add(target)
for name, worker in workers.items():
    before = len(errors)
    found = targets.get(name, [])
    if len(found) != 1:
        fail(f"Deployment {name} (group {worker['group']!r}): {len(found)} ScaledObjects target it "
             f"({', '.join(found) or 'none'}), expected exactly one")
    autoscale = worker["autoscale"]
    if autoscale is None or autoscale.get("integration") != "keda":
        fail(f"group {worker['group']!r} of Deployment {name} lacks <autoscale integration=\"keda\">")
    if len(errors) == before and name not in broken:
        print(f"ok: Deployment {name}: group {worker['group']!r}, ScaledObject {found[0]}")

# KEDA objects for the schema: the render's, and those of the overlay's files that the
# render does not hold (alternatives such as scaledobject-gpu-prometheus.yaml); these get
# the structural checks above as well.
rendered = [{"source": "render", "object": o} for o in render if o.get("apiVersion", "").startswith("keda.sh/")]
specs = [json.dumps(e["object"].get("spec"), sort_keys=True) for e in rendered]
extra = []
for f in sorted(os.listdir(f"{tmp}/files")):
    source = f"overlays/keda/{f[:-len('.json')]}.yaml"
    for obj in load_objects(f"{tmp}/files/{f}", "keda-test"):
        if json.dumps(obj.get("spec"), sort_keys=True) in specs:
            continue
        extra.append({"source": source, "object": obj})
        if obj["kind"] == "ScaledObject":
            before = len(errors)
            if check_scaled_object(obj, source) and len(errors) == before:
                print(f"ok: ScaledObject {obj['metadata']['name']} ({source}), not rendered")
with open(f"{tmp}/keda-objects.json", "w") as out:
    json.dump(rendered + extra, out)

for e in errors:
    print("FAIL:", e)
sys.exit(1 if errors else 0)
PY

# KEDA's schema: the npm package, installed once into WORK_DIR.
installed_version() {
  node -p "require(process.argv[1]).version" \
    "$work_dir/node_modules/$keda_package/package.json" 2> /dev/null || true
}
if [[ $(installed_version) != "$keda_version" ]]; then
  echo "installing $keda_package@$keda_version into $work_dir"
  mkdir -p "$work_dir"
  if ! npm install --no-audit --no-fund --ignore-scripts --loglevel=error --prefix "$work_dir" \
      "$keda_package@$keda_version" > "$tmp/npm.log" 2>&1; then
    echo "FAIL: npm install $keda_package@$keda_version"
    cat "$tmp/npm.log"
    exit 1
  fi
fi
if [[ -f $tmp/keda-objects.json ]]; then
  node "$validator" "$work_dir" "$tmp/keda-objects.json" || failed=1
else
  failed=1
fi

# Last: the quern binary's strict config parser on the overlay's config (as kustomize_test.sh
# does for the base's), which knows <autoscale> and its attributes.
if ! out=$("$quern_bin" plugins --config "$overlay/quern.xml" 2>&1); then
  echo "FAIL: quern rejects overlays/keda/quern.xml:"
  echo "$out"
  failed=1
else
  echo "ok: quern accepts overlays/keda/quern.xml"
fi

if ((failed)); then
  echo "FAIL"
  exit 1
fi
echo "PASS"
