// Validates KEDA objects (ScaledObject, TriggerAuthentication) against KEDA's published
// schema: the validators that @kubernetes-models/keda generates from the CRDs of a KEDA
// release (its package.json, "crd-generate"). Run by keda_test.sh, which installs that
// package into MODULES_DIR and writes OBJECTS_JSON.
//
// usage: node keda_validate.mjs MODULES_DIR OBJECTS_JSON
//   MODULES_DIR   the npm --prefix folder holding node_modules/@kubernetes-models/keda
//   OBJECTS_JSON  a JSON array of {"source": "where it came from", "object": {...}}
// Exit 0 when every object is valid, 1 otherwise (each problem printed as "FAIL: ...").
//
// Three checks per object:
//   1. the schema's validator (types, required fields, enums): {minReplicaCount: "zero"}
//      fails here;
//   2. unknown fields: a CRD's structural schema does not forbid them (the API server drops
//      them, or refuses them under kubectl's strict field validation), so a misspelt field
//      would pass check 1 and then silently do nothing. The validator reads every field its
//      schema describes; the object is handed to it behind a Proxy that records those
//      reads, and a field it never read is one the schema does not know;
//   3. a trigger's metadata (a map of strings to the schema) against the parameters that
//      KEDA documents for the metrics-api and prometheus scalers (keda.sh, "Metrics API",
//      "Prometheus"), so that a misspelt parameter, or a credential written into the
//      ScaledObject instead of its TriggerAuthentication, is caught too.
// Before any of that, a self-check: a copy of the first ScaledObject broken both ways must be
// refused, so that the test cannot pass because the validator checks nothing.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const [modulesDir, objectsFile] = process.argv.slice(2);
if (!modulesDir || !objectsFile) {
  console.error("usage: node keda_validate.mjs MODULES_DIR OBJECTS_JSON");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(modulesDir), "package.json"));
const kedaVersion = require("@kubernetes-models/keda/package.json").version;
const models = {
  ScaledObject: require("@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject").ScaledObject,
  TriggerAuthentication: require("@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication")
    .TriggerAuthentication,
  ClusterTriggerAuthentication: require("@kubernetes-models/keda/keda.sh/v1alpha1/ClusterTriggerAuthentication")
    .ClusterTriggerAuthentication,
};

// The documented trigger parameters (metadata keys) of the scalers Quern's manifests use.
// Credentials (token, apiKey, username, password, bearerToken, ...) are deliberately absent:
// they belong in a TriggerAuthentication.
const scalerParameters = {
  "metrics-api": [
    "url", "format", "valueLocation", "targetValue", "activationTargetValue", "unsafeSsl", "timeout",
    "aggregateFromKubeServiceEndpoints", "aggregationType", "authMode", "method", "keyParamName",
  ],
  prometheus: [
    "serverAddress", "query", "threshold", "activationThreshold", "namespace", "customHeaders",
    "ignoreNullValues", "queryParameters", "unsafeSsl", "timeout", "authModes",
  ],
};

// Runs the model's validator on `data` behind Proxies that record every field it reads.
// Returns a list of "path: message" problems.
function validate(kind, data) {
  const model = models[kind];
  if (!model) return [`no KEDA schema for kind ${kind}`];
  const reads = new WeakMap(); // object -> Set of the keys the validator read
  const proxies = new WeakMap();
  const wrap = (value) => {
    if (value === null || typeof value !== "object") return value;
    if (!proxies.has(value)) {
      reads.set(value, new Set());
      const seen = (key) => typeof key === "string" && reads.get(value).add(key);
      proxies.set(
        value,
        new Proxy(value, {
          get(target, key, receiver) {
            seen(key);
            return wrap(Reflect.get(target, key, receiver));
          },
          has(target, key) {
            seen(key);
            return Reflect.has(target, key);
          },
        }),
      );
    }
    return proxies.get(value);
  };
  const problems = [];
  try {
    // The models' validate() validates `this`: call it on the proxied plain object.
    model.prototype.validate.call(wrap(data));
  } catch (e) {
    if (!Array.isArray(e.errors)) throw e;
    for (const err of e.errors) problems.push(`${err.instancePath || "/"}: ${err.message}`);
  }
  const unknown = (value, at) => {
    if (value === null || typeof value !== "object") return;
    const read = reads.get(value);
    if (!read) return; // never reached: its parent is already reported or failed
    for (const key of Object.keys(value)) {
      if (!read.has(key)) problems.push(`${at}/${key}: not a field of KEDA's schema`);
      else unknown(value[key], `${at}/${key}`);
    }
  };
  unknown(data, "");
  if (kind === "ScaledObject") {
    (data.spec?.triggers ?? []).forEach((trigger, i) => {
      const known = scalerParameters[trigger?.type];
      if (!known) return;
      for (const key of Object.keys(trigger.metadata ?? {})) {
        if (!known.includes(key))
          problems.push(`/spec/triggers/${i}/metadata/${key}: not a documented parameter of the ${trigger.type} scaler`);
      }
    });
  }
  return problems;
}

const entries = JSON.parse(readFileSync(objectsFile, "utf8"));
let failed = false;
const fail = (message) => {
  console.log(`FAIL: ${message}`);
  failed = true;
};

// The self-check.
const sample = entries.find((e) => e.object.kind === "ScaledObject");
if (!sample) {
  fail("no ScaledObject to validate");
} else {
  const badType = structuredClone(sample.object);
  badType.spec.minReplicaCount = "zero";
  const badField = structuredClone(sample.object);
  badField.spec.triggers[0].metaData = { url: "http://example.invalid/" };
  for (const [what, obj, expect] of [
    ['minReplicaCount: "zero"', badType, "/spec/minReplicaCount"],
    ["an unknown trigger field metaData", badField, "/spec/triggers/0/metaData"],
  ]) {
    const problems = validate("ScaledObject", obj);
    if (!problems.some((p) => p.startsWith(expect)))
      fail(`self-check: a ScaledObject with ${what} passes the validator (${problems.join("; ") || "no problem found"})`);
  }
}

for (const { source, object } of entries) {
  const name = `${object.kind} ${object.metadata?.name} (${source})`;
  if (!String(object.apiVersion).startsWith("keda.sh/")) {
    fail(`${name}: not a keda.sh object`);
    continue;
  }
  const problems = validate(object.kind, object);
  if (problems.length) for (const p of problems) fail(`${name}: ${p}`);
  else console.log(`ok: ${name} matches KEDA's schema (@kubernetes-models/keda ${kedaVersion})`);
}
process.exit(failed ? 1 : 0);
