#!/usr/bin/env bash
# Renders the Kustomize base and every overlay of deploy/kubernetes and checks what a typo
# or a forgotten edit would break in a cluster, without one:
#   - quern.xml / agent.xml / the compose config are well-formed XML and, given a quern
#     binary, pass its strict config parser;
#   - every render parses (kubectl converts it to JSON, offline);
#   - every <group> of deploy/kubernetes/base/quern.xml has a worker Deployment (matched by
#     its --group argument) in each render that carries that config, and no worker names a
#     group the config lacks;
#   - each worker's and agent's terminationGracePeriodSeconds exceeds its shutdown grace
#     plus the config's kill-grace, so that a pod's stop hands its jobs back before the
#     kubelet's SIGKILL;
#   - the server has a liveness probe on /healthz and a readiness probe on /readyz, on the
#     port its --metrics-listen serves (the same holds for every probed daemon);
#   - the pods of groups with sandbox="bwrap" (and agents) carry the job-sandbox settings,
#     and no other pod does; the Deployments (and pods) labelled quern/job-sandbox=bwrap are
#     exactly those; every render gives all of them the same settings (base/job-sandbox.yaml
#     and its copy in overlays/agent-remote agree);
#   - the database URL reaches servers and workers only from a Secret, never agents; no
#     placeholder Secret is part of base or production.
#
# usage: [KUBECTL=/path/to/kubectl] kustomize_test.sh SOURCE_DIR [QUERN_BINARY]
# KUBECTL: the kubectl to render with (default: kubectl in PATH). The manifests must render
# with kubectl 1.20 (Debian 12's kubernetes-client, Kustomize v2.0) as well as with current
# ones: run it with both (deploy/kubernetes/README.md, "Kustomize versions").
# Exit 77 (CTest: skipped) when kubectl or python3 is missing.
set -euo pipefail

root=${1:?usage: [KUBECTL=kubectl] kustomize_test.sh SOURCE_DIR [QUERN_BINARY]}
quern_bin=${2:-}
kubectl=${KUBECTL:-kubectl}
k8s=$root/deploy/kubernetes

if ! command -v python3 > /dev/null 2>&1; then
  echo "SKIP: python3 not found (it reads the rendered manifests)"
  exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The configs first: they are checked even where kubectl is missing.
configs=("$k8s/base/quern.xml" "$k8s/overlays/agent-remote/agent.xml" "$root/deploy/container/quern.xml")
for cfg in "${configs[@]}"; do
  # Python's parser is strict where Quern's is lenient: "--" inside a comment is not XML.
  python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "$cfg" \
    || { echo "FAIL: $cfg is not well-formed XML"; exit 1; }
  if [[ -n $quern_bin ]]; then
    # `quern plugins` loads the config with the same strict parser as the daemons (unknown
    # attributes, bad durations) and loads the plugins found next to the binary.
    if ! out=$("$quern_bin" plugins --config "$cfg" 2>&1); then
      echo "FAIL: quern rejects $cfg:"
      echo "$out"
      exit 1
    fi
  fi
  echo "ok: config $cfg"
done

if ! command -v "$kubectl" > /dev/null 2>&1; then
  echo "SKIP: kubectl not found ($kubectl)"
  exit 77
fi

# Offline: an empty kubeconfig, so that nothing here can reach a cluster.
: > "$tmp/kubeconfig"
export KUBECONFIG=$tmp/kubeconfig
echo "kubectl: $kubectl, $("$kubectl" version --client 2>/dev/null | head -n 1)"

targets=(base)
for dir in "$k8s"/overlays/*/; do
  [[ -f $dir/kustomization.yaml ]] && targets+=("overlays/$(basename "$dir")")
done

for target in "${targets[@]}"; do
  name=${target//\//_}
  # Current versions warn on stderr about the fields kept for kubectl 1.20 (bases,
  # patchesStrategicMerge, patchesJson6902); only a failure shows it.
  if ! "$kubectl" kustomize "$k8s/$target" > "$tmp/$name.yaml" 2> "$tmp/$name.err"; then
    echo "FAIL: $kubectl kustomize $target"
    cat "$tmp/$name.err"
    exit 1
  fi
  # kubectl's own decoder is the parse check: --local touches no cluster, and the label it
  # adds is ignored below. (kubectl 1.20 too keeps every field, known to it or not.)
  if ! "$kubectl" label --local -f "$tmp/$name.yaml" -o json kustomize-test=parsed \
      > "$tmp/$name.json" 2> "$tmp/$name.err"; then
    echo "FAIL: the output of kubectl kustomize $target does not parse"
    cat "$tmp/$name.err"
    exit 1
  fi
  echo "ok: rendered $target ($(grep -c '^kind:' "$tmp/$name.yaml") objects)"
done

PYTHONPATH="$(dirname "${BASH_SOURCE[0]}")" python3 - "$k8s/base/quern.xml" "$tmp" "${targets[@]}" <<'PY'
import json
import re
import sys
import xml.etree.ElementTree as ET

from manifests import load_objects, option, seconds

base_config_path, tmp, targets = sys.argv[1], sys.argv[2], sys.argv[3:]
errors = []


def fail(target, message):
    errors.append(f"{target}: {message}")


def parse_config(text):
    root = ET.fromstring(text)
    queue = root.find("queue")
    kill_grace = seconds(queue.get("kill-grace", "2s")) if queue is not None else 2.0
    workers = root.find("workers")
    groups = None  # None: no <workers>, the built-in groups
    if workers is not None:
        groups = {g.get("name", "default"): g.get("sandbox", "bwrap") for g in workers.findall("group")}
    return {"kill_grace": kill_grace, "groups": groups}


def port_number(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


with open(base_config_path) as f:
    base_config = parse_config(f.read())
base_groups = list(base_config["groups"] or {})
sandbox_settings = {}  # the job-sandbox settings of a pod -> the Deployments that have them
if not base_groups:
    errors.append(f"{base_config_path}: no <group> found")

for target in targets:
    objects = load_objects(f"{tmp}/{target.replace('/', '_')}.json")
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)

    # Quern configs by ConfigMap name and key.
    configs = {}
    for cm in by_kind.get("ConfigMap", []):
        for key, text in (cm.get("data") or {}).items():
            if key.endswith(".xml"):
                try:
                    configs[(cm["metadata"]["name"], key)] = parse_config(text)
                except (ET.ParseError, ValueError) as e:
                    fail(target, f"ConfigMap {cm['metadata']['name']} key {key}: {e}")

    if target in ("base", "overlays/production"):
        for secret in by_kind.get("Secret", []):
            fail(target, f"Secret {secret['metadata']['name']} is rendered: a placeholder "
                         "would overwrite the real one on every apply")

    roles = {}
    for dep in by_kind.get("Deployment", []):
        dname = dep["metadata"]["name"]
        pod = dep["spec"]["template"]["spec"]
        container = pod["containers"][0]
        args = container.get("args", [])
        role = args[0] if args else None
        if role not in ("server", "worker", "agent"):
            continue  # not a Quern daemon (dev's PostgreSQL)
        roles.setdefault(role, []).append(dep)
        where = f"Deployment {dname}"

        # The config the daemon reads: --config inside a mounted ConfigMap.
        config = None
        config_path = option(args, "config")
        mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
        for vol in pod.get("volumes", []):
            cm = vol.get("configMap")
            mount = mounts.get(vol["name"])
            if cm and mount and config_path and config_path.startswith(mount["mountPath"].rstrip("/") + "/"):
                key = config_path[len(mount["mountPath"].rstrip("/")) + 1:]
                config = configs.get((cm["name"], key))
        if config is None:
            fail(target, f"{where}: --config={config_path} is not a quern config of a mounted ConfigMap")
            continue

        # Probes: on the port --metrics-listen serves.
        listen = option(args, "metrics-listen")
        probes = {k: container.get(k) for k in ("livenessProbe", "readinessProbe", "startupProbe")}
        for kind, probe in probes.items():
            if probe is None:
                continue
            http = probe.get("httpGet")
            if not http:
                fail(target, f"{where}: {kind} is not an httpGet probe")
                continue
            number = port_number(container, http.get("port"))
            if listen is None or number is None or not listen.endswith(f":{number}"):
                fail(target, f"{where}: {kind} probes port {http.get('port')}, but --metrics-listen is {listen}")
        expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
        for kind, path in expected.items():
            got = (probes[kind] or {}).get("httpGet", {}).get("path")
            if got != path:
                fail(target, f"{where}: {kind} must GET {path}, has {got}")

        # Pod hygiene every daemon shares.
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            fail(target, f"{where}: runAsNonRoot is not set")
        sc = container.get("securityContext", {})
        if sc.get("privileged") or sc.get("allowPrivilegeEscalation", True):
            fail(target, f"{where}: privileged or allows privilege escalation")
        resources = container.get("resources", {})
        if not resources.get("requests") or "memory" not in resources.get("limits", {}):
            fail(target, f"{where}: needs resource requests and a memory limit")

        env = {e["name"]: e for e in container.get("env", [])}
        if role in ("server", "worker"):
            url = env.get("QUERN_DATABASE_URL", {})
            if "secretKeyRef" not in url.get("valueFrom", {}):
                fail(target, f"{where}: QUERN_DATABASE_URL must come from a Secret")
        if role == "agent":
            if "QUERN_DATABASE_URL" in env:
                fail(target, f"{where}: an agent must never get the database URL")
            if "secretKeyRef" not in env.get("QUERN_TOKEN", {}).get("valueFrom", {}):
                fail(target, f"{where}: QUERN_TOKEN must come from a Secret")

        if role in ("worker", "agent"):
            # Stopping: shutdown grace (default 30 s, docs/DESIGN.md), then kill-grace.
            shutdown = float(option(args, "shutdown-grace") or 30)
            grace = pod.get("terminationGracePeriodSeconds", 30)
            if not grace > shutdown + config["kill_grace"]:
                fail(target, f"{where}: terminationGracePeriodSeconds {grace} must exceed shutdown-grace "
                             f"{shutdown:g} + kill-grace {config['kill_grace']:g}")

            # The job sandbox: what the pod allows must match what the config asks for.
            if role == "agent":
                sandboxed = True  # an agent's jobs are always sandboxed
            else:
                group = option(args, "group")
                groups = config["groups"]
                if group is None or groups is None or group not in groups:
                    fail(target, f"{where}: --group={group} is not a group of its config")
                    continue
                sandboxed = groups[group] == "bwrap"
            has = pod.get("hostUsers") is False and sc.get("procMount") == "Unmasked"
            if sandboxed and not has:
                fail(target, f"{where}: its jobs are sandboxed (bwrap) but the pod lacks hostUsers: false "
                             "and procMount: Unmasked (base/job-sandbox.yaml, patchesJson6902)")
            unconfined = any((sc.get(k) or {}).get("type") == "Unconfined"
                             for k in ("seccompProfile", "appArmorProfile"))
            if not sandboxed and (has or pod.get("hostUsers") is False or sc.get("procMount") or unconfined):
                fail(target, f"{where}: sandbox=\"none\" but the pod gets the sandbox's permissions")
            # The label marks the sandboxed Deployments and pods (admission policies rely on it).
            for what, meta in (("Deployment", dep["metadata"]), ("pod template", dep["spec"]["template"]["metadata"])):
                labelled = (meta.get("labels") or {}).get("quern/job-sandbox") == "bwrap"
                if labelled != has:
                    fail(target, f"{where}: the {what} is {'' if labelled else 'not '}labelled "
                                 f"quern/job-sandbox=bwrap but its pod {'has' if has else 'lacks'} the sandbox's settings")
            if has:
                settings = json.dumps({"hostUsers": pod.get("hostUsers"),
                                       **{k: sc.get(k) for k in ("procMount", "seccompProfile", "appArmorProfile")}},
                                      sort_keys=True)
                sandbox_settings.setdefault(settings, []).append(f"{target}: {dname}")

    # Every group of the config has its worker Deployment, wherever that config is deployed.
    for (cm_name, key), config in configs.items():
        if config["groups"] is None or not roles.get("server"):
            continue
        served = {}
        for dep in roles.get("worker", []):
            group = option(dep["spec"]["template"]["spec"]["containers"][0]["args"], "group")
            served.setdefault(group, []).append(dep["metadata"]["name"])
        for group in config["groups"]:
            if group not in served:
                fail(target, f"group {group!r} of {key} has no worker Deployment (--group={group})")
        for group, deps in served.items():
            if len(deps) > 1:
                fail(target, f"group {group!r} has several worker Deployments: {', '.join(deps)}")
    if target in ("base", "overlays/production"):
        if not roles.get("server"):
            fail(target, "no server Deployment")
        rendered_groups = {g for (_, k), c in configs.items() if c["groups"] for g in c["groups"]}
        for group in base_groups:
            if group not in rendered_groups:
                fail(target, f"group {group!r} of base/quern.xml is missing from the rendered config")

    # One image for every Quern pod of a render: a rollout must not mix binaries.
    images = {d["spec"]["template"]["spec"]["containers"][0]["image"] for ds in roles.values() for d in ds}
    if len(images) > 1:
        fail(target, f"Quern Deployments use different images: {sorted(images)}")

    counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(roles.items()))
    print(f"ok: checked {target}: {counts}" if not any(e.startswith(target + ":") for e in errors)
          else f"FAIL: {target}")

# One set of job-sandbox settings everywhere: base/job-sandbox.yaml and the copy in
# overlays/agent-remote must not drift apart.
if len(sandbox_settings) > 1:
    errors.append("the job-sandbox settings differ between Deployments: " +
                  "; ".join(f"{', '.join(deps)}: {settings}" for settings, deps in sandbox_settings.items()))

for e in errors:
    print("FAIL:", e)
sys.exit(1 if errors else 0)
PY
echo "PASS"
