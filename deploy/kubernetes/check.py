#!/usr/bin/env python3
"""Offline checks of deploy/kubernetes. Renders every kustomization (openshift, upstream, the
default and examples) with its own small kustomize (resources, labels, JSON 6902 patches,
images, generators) and, when a kubectl with kustomize v5 is on PATH, compares that with
`kubectl kustomize`. Then: core kinds validate against the Kubernetes schemas bundled in
kubernetes-validate; VirtualMachineInstances against KubeVirt's API types and the
NodeNetworkConfigurationPolicy against NMState's, both from the npm package
@kubevirt-ui-ext/kubevirt-api (generated from KubeVirt's OpenAPI document); NADs against the
NetworkAttachmentDefinition CRD's schema, with their CNI config parsed and its plugins checked.
And the cross-checks: the MAC, network name, bridge, interface, addresses, mounts, ports and
probes agree across the NAD, the VMIs, the Deployment and pxed's config, plus the rules of
issue 8 (restricted-v2, no token in the manifests, admin API on the pod IP, no router, images,
node placement, labels that do not leak onto VMIs, Secure Boot off on UEFI examples).
Prints one line per check; exits 1 on the first disagreement.

Usage: check.py REPO_DIR   (a Python with kubernetes-validate and PyYAML; the npm package
unpacked in REPO_DIR/target/kubevirt-api, see KUBEVIRT_API_INSTALL)
"""
import base64
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib

import jsonschema
import kubernetes_validate
import yaml

K8S_VERSION = "1.30.0"
KUBEVIRT_API = ("@kubevirt-ui-ext/kubevirt-api", "1.7.0")
KUBEVIRT_API_DIR = "target/kubevirt-api"
KUBEVIRT_API_INSTALL = (
    f"mkdir -p {KUBEVIRT_API_DIR} && npm pack --silent --pack-destination {KUBEVIRT_API_DIR} "
    f"{KUBEVIRT_API[0]}@{KUBEVIRT_API[1]} && tar -xzf {KUBEVIRT_API_DIR}/kubevirt-ui-ext-kubevirt-api-"
    f"{KUBEVIRT_API[1]}.tgz -C {KUBEVIRT_API_DIR}"
)
CRDS = {"NetworkAttachmentDefinition", "VirtualMachineInstance", "NodeNetworkConfigurationPolicy"}
PLACEMENT = ("pxed/br1", "true")            # the node label the README has users set
TOKEN_SECRET = "pxed-admin-token"
TOKEN_STEP = 'kubectl create secret generic pxed-admin-token --from-literal=token="$(openssl rand -hex 32)"'
IMAGE_USER = (10001, 0)                     # the image's USER uid:gid
VARIANTS = {"openshift": "cnv-bridge", "upstream": "bridge"}
# Pod fields that restricted-v2 assigns itself and rejects when a manifest fixes them.
ASSIGNED_IDS = ("runAsUser", "runAsGroup", "fsGroup", "supplementalGroups")
RESTRICTED_V2_VOLUMES = {"configMap", "downwardAPI", "emptyDir", "persistentVolumeClaim", "projected", "secret", "ephemeral", "csi"}


def fail(msg):
    print(f"FAIL {msg}")
    sys.exit(1)


def ok(msg):
    print(f"ok   {msg}")


# ---------------------------------------------------------------------------------------
# A small kustomize: exactly the fields these kustomizations use, refusing any other.

KUST_KEYS = {"apiVersion", "kind", "resources", "labels", "patches", "images", "configMapGenerator", "secretGenerator", "generatorOptions"}


def kustomizations(kube):
    """Every kustomization.yaml under deploy/kubernetes."""
    for d, _, files in os.walk(kube):
        if "kustomization.yaml" in files:
            yield os.path.join(d, "kustomization.yaml")


def build(dirpath):
    """The objects `kustomize build dirpath` makes, as (source file, object) pairs."""
    kfile = os.path.join(dirpath, "kustomization.yaml")
    kust = yaml.safe_load(open(kfile)) or {}
    unknown = set(kust) - KUST_KEYS
    if unknown:
        fail(f"{os.path.relpath(kfile)}: check.py's kustomize does not know {sorted(unknown)}")
    out = []
    for r in kust.get("resources", []):
        p = os.path.normpath(os.path.join(dirpath, r))
        if os.path.isdir(p):
            out += build(p)
        else:
            for doc in yaml.safe_load_all(open(p)):
                if doc:
                    out.append((os.path.relpath(p), doc))
    opts = kust.get("generatorOptions", {})
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for g in kust.get(key, []):
            out.append((os.path.relpath(kfile), generate(dirpath, kind, g, opts)))
    for p in kust.get("patches", []):
        apply_patch(dirpath, p, out)
    for spec in kust.get("labels", []):
        if spec.get("includeSelectors"):
            fail(f"{os.path.relpath(kfile)}: labels with includeSelectors would change selectors (and check.py does not model it)")
        for _, o in out:
            o.setdefault("metadata", {}).setdefault("labels", {}).update(spec["pairs"])
            if spec.get("includeTemplates") and "template" in o.get("spec", {}):
                o["spec"]["template"].setdefault("metadata", {}).setdefault("labels", {}).update(spec["pairs"])
    for img in kust.get("images", []):
        for _, o in out:
            set_image(o, img)
    return out


def generate(dirpath, kind, g, opts):
    o = {**g.get("options", {}), **{k: v for k, v in opts.items() if k not in g.get("options", {})}}
    if set(g) - {"name", "files", "literals", "options", "type"} or not (o.get("disableNameSuffixHash")):
        fail(f"{dirpath}: generator {g.get('name')}: only name/files/literals/options with disableNameSuffixHash are modelled")
    data = {}
    for f in g.get("files", []):
        key, _, path = f.rpartition("=") if "=" in f else (os.path.basename(f), "", f)
        data[key] = open(os.path.join(dirpath, path)).read()
    for lit in g.get("literals", []):
        k, _, v = lit.partition("=")
        data[k] = v
    meta = {"name": g["name"]}
    for k in ("labels", "annotations"):
        if o.get(k):
            meta[k] = dict(o[k])
    if kind == "Secret":
        return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": g.get("type", "Opaque"),
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def apply_patch(dirpath, p, objs):
    text = p["patch"] if "patch" in p else open(os.path.join(dirpath, p["path"])).read()
    ops = yaml.safe_load(text)
    target = p.get("target", {})
    if not isinstance(ops, list) or set(target) - {"kind", "name"}:
        fail(f"{dirpath}: only JSON 6902 patches targeted by kind and name are modelled")
    hits = [o for _, o in objs if o["kind"] == target.get("kind", o["kind"])
            and re.fullmatch(target.get("name", ".*"), o["metadata"]["name"])]
    if not hits:
        fail(f"{dirpath}: patch target {target} matches nothing")
    for o in hits:
        for op in ops:
            json_patch(o, op, dirpath)


def json_patch(doc, op, where):
    keys = [k.replace("~1", "/").replace("~0", "~") for k in op["path"].split("/")[1:]]
    parent = doc
    for k in keys[:-1]:
        parent = parent[int(k)] if isinstance(parent, list) else parent[k]
    last = keys[-1]
    if op["op"] in ("add", "replace"):
        if isinstance(parent, list):
            if op["op"] == "add":
                parent.insert(len(parent) if last == "-" else int(last), op["value"])
            else:
                parent[int(last)] = op["value"]
        else:
            if op["op"] == "replace" and last not in parent:
                fail(f"{where}: replace of missing {op['path']}")
            parent[last] = op["value"]
    elif op["op"] == "remove":
        del parent[int(last) if isinstance(parent, list) else last]
    else:
        fail(f"{where}: JSON patch op {op['op']} is not modelled")


def set_image(o, img):
    """kustomize's images transformer: every containers[]/initContainers[] image named img.name."""
    if isinstance(o, dict):
        for k, v in o.items():
            if k in ("containers", "initContainers") and isinstance(v, list):
                for c in v:
                    name = re.split(r"@|:(?=[^/]*$)", c.get("image", ""))[0]
                    if name == img["name"]:
                        new = img.get("newName", name)
                        if "digest" in img:
                            new += "@" + img["digest"]
                        elif "newTag" in img:
                            new += ":" + str(img["newTag"])
                        else:
                            new = c["image"].replace(name, new, 1)
                        c["image"] = new
            set_image(v, img)
    elif isinstance(o, list):
        for v in o:
            set_image(v, img)


def keyed(objs):
    return {(o["apiVersion"], o["kind"], o["metadata"]["name"]): o for _, o in objs}


def compare_with_kubectl(name, path, objs):
    """Our rendering must equal the real kustomize's, where one is at hand."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return "no kubectl on PATH"
    try:
        ver = json.loads(subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=60).stdout)
        if int(ver.get("kustomizeVersion", "v0").lstrip("v").split(".")[0]) < 5:
            return f"kubectl's kustomize is {ver.get('kustomizeVersion')}, older than v5"
        r = subprocess.run([kubectl, "kustomize", path], capture_output=True, text=True, timeout=120)
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        return f"kubectl unusable ({e})"
    if r.returncode != 0:
        fail(f"{name}: kubectl kustomize failed: {r.stderr.strip()}")
    real = keyed(("kubectl", d) for d in yaml.safe_load_all(r.stdout) if d)
    ours = keyed(objs)
    if real != ours:
        for k in sorted(set(real) | set(ours)):
            if real.get(k) != ours.get(k):
                fail(f"{name}: check.py renders {k} differently from kubectl kustomize:\n  ours: {ours.get(k)}\n  real: {real.get(k)}")
    return None


# ---------------------------------------------------------------------------------------
# KubeVirt's and NMState's API types, from the TypeScript declarations that openapi-generator
# made from KubeVirt's OpenAPI document (npm @kubevirt-ui-ext/kubevirt-api). A small parser
# turns `interface X { name?: Type; }` into a schema: field names, which are required, types.

TOKEN = re.compile(r"\s+|//[^\n]*|/\*.*?\*/|(?P<t>'[^']*'|\"[^\"]*\"|[A-Za-z_$][\w$]*|\d+(?:\.\d+)?|\.\.\.|=>|.)", re.S)
PRIMS = {"string", "number", "boolean", "object", "any", "unknown", "null", "Date", "true", "false", "undefined"}


class TsParseError(Exception):
    pass


class TsTypes:
    """The interfaces, enums, type aliases and string constants of one .d.ts file."""

    def __init__(self, text, generated):
        # openapi-generator writes a field whose name it reserves (default, continue, export,
        # configuration) with a leading underscore; the JSON name has none.
        self.generated = generated
        self.toks = [m.group("t") for m in TOKEN.finditer(text) if m.group("t")]
        self.consts, self.enums, self.types = {}, {}, {}
        t = self.toks
        for i in range(len(t) - 4):
            if t[i] == "declare" and t[i + 1] == "const" and t[i + 3] == "=" and t[i + 4][0] in "'\"":
                self.consts[t[i + 2]] = t[i + 4][1:-1]
        for i in range(len(t) - 4):
            try:
                if t[i] == "interface" and t[i + 2] == "{":
                    self.types[t[i + 1]] = self.parse(i + 2, self.obj)
                elif t[i] == "declare" and t[i + 1] == "type" and t[i + 3] == "=":
                    self.types[t[i + 2]] = self.parse(i + 4, self.union)
                elif t[i] == "declare" and t[i + 1] == "const" and t[i + 3] == ":" and t[i + 4] == "{":
                    members = self.parse(i + 4, self.obj)[1]
                    if members and all(m[1][0] == "lit" for m in members.values()):
                        self.enums[t[i + 2]] = {m[1][1] for m in members.values()}
                elif t[i] == "declare" and t[i + 1] == "enum" and t[i + 3] == "{":
                    j, vals = i + 4, set()
                    while t[j] != "}":
                        if t[j] == "=":
                            vals.add(t[j + 1][1:-1])
                        j += 1
                    self.enums[t[i + 2]] = vals
            except (TsParseError, IndexError, KeyError) as e:
                if t[i] == "interface" or t[i + 1] == "type":
                    self.types.setdefault(t[i + 1] if t[i] == "interface" else t[i + 2], ("unparsed", str(e)))

    def parse(self, i, rule):
        self.i = i
        return rule()

    def peek(self, k=0):
        return self.toks[self.i + k]

    def take(self, want=None):
        tok = self.toks[self.i]
        if want is not None and tok != want:
            raise TsParseError(f"expected {want!r}, found {tok!r}")
        self.i += 1
        return tok

    def union(self):
        alts = [self.postfix()]
        while self.peek() == "|":
            self.take()
            alts.append(self.postfix())
        return alts[0] if len(alts) == 1 else ("union", alts)

    def postfix(self):
        t = self.primary()
        while self.peek() == "[" and self.peek(1) == "]":
            self.i += 2
            t = ("array", t)
        return t

    def primary(self):
        tok = self.peek()
        if tok == "|":                       # a leading `|` of a multi-line union
            self.take()
            return self.primary()
        if tok == "(":
            self.take()
            t = self.union()
            self.take(")")
            return t
        if tok == "{":
            return self.obj()
        self.take()
        if tok[0] in "'\"":
            return ("lit", tok[1:-1])
        if tok[0].isdigit():
            return ("lit", float(tok))
        if tok in ("Array", "Record") and self.peek() == "<":
            self.take()
            if tok == "Record":
                self.take("string")
                self.take(",")
            t = self.union()
            self.take(">")
            return ("array", t) if tok == "Array" else ("map", t)
        if tok in PRIMS:
            return ("prim", tok)
        if re.fullmatch(r"[A-Za-z_$][\w$]*", tok):
            return ("ref", tok)
        raise TsParseError(f"unexpected {tok!r}")

    def obj(self):
        self.take("{")
        fields, index = {}, None
        while self.peek() != "}":
            if self.peek() == "readonly" and self.peek(1) not in ("?", ":"):
                self.take()
            if self.peek() == "[" and self.peek(2) in (":", "in"):
                self.i += 3
                self.union()
                self.take("]")
                self.take(":")
                index = self.union()
            else:
                if self.peek() == "[":
                    self.take()
                    key = self.take()
                    key = key[1:-1] if key[0] in "'\"" else self.consts[key]
                    self.take("]")
                else:
                    key = self.take()
                    key = key[1:-1] if key[0] in "'\"" else key
                    if self.generated and key.startswith("_"):
                        key = key[1:]
                optional = self.peek() == "?"
                if optional:
                    self.take()
                if self.peek() == "(":
                    raise TsParseError(f"method {key}")
                self.take(":")
                fields[key] = (not optional, self.union())
            if self.peek() in (";", ","):
                self.take()
        self.take("}")
        return ("obj", fields, index)

    def check(self, v, t, path, errs):
        """Appends to errs every way v does not fit type t."""
        kind = t[0]
        if kind == "prim":
            want = {"string": str, "Date": str, "boolean": bool, "object": (dict, list), "null": type(None)}.get(t[1])
            if t[1] == "number":
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    errs.append(f"{path}: {v!r} is not a number")
            elif t[1] in ("true", "false"):
                if v is not (t[1] == "true"):
                    errs.append(f"{path}: {v!r} is not {t[1]}")
            elif want and not isinstance(v, want):
                errs.append(f"{path}: {v!r} is not {t[1]}")
        elif kind == "lit":
            if v != t[1]:
                errs.append(f"{path}: {v!r} is not {t[1]!r}")
        elif kind == "array":
            if not isinstance(v, list):
                errs.append(f"{path}: not a list")
            else:
                for n, x in enumerate(v):
                    self.check(x, t[1], f"{path}[{n}]", errs)
        elif kind == "map":
            if not isinstance(v, dict):
                errs.append(f"{path}: not a map")
            else:
                for k, x in v.items():
                    self.check(x, t[1], f"{path}.{k}", errs)
        elif kind == "obj":
            if not isinstance(v, dict):
                errs.append(f"{path}: {v!r} is not an object")
                return
            for k, (required, _) in t[1].items():
                if required and k not in v:
                    errs.append(f"{path}: required field {k} is missing")
            for k, x in v.items():
                if k in t[1]:
                    self.check(x, t[1][k][1], f"{path}.{k}", errs)
                elif t[2] is not None:
                    self.check(x, t[2], f"{path}.{k}", errs)
                else:
                    errs.append(f"{path}: unknown field {k!r} (known: {', '.join(sorted(t[1]))})")
        elif kind == "union":
            for alt in t[1]:
                sub = []
                self.check(v, alt, path, sub)
                if not sub:
                    return
            errs.append(f"{path}: {v!r} fits none of {[a[1] if a[0] != 'obj' else 'object' for a in t[1]]}")
        elif kind == "ref":
            name = t[1]
            if name in self.enums:
                if v not in self.enums[name]:
                    errs.append(f"{path}: {v!r} is not one of {sorted(self.enums[name])}")
            elif name in self.types:
                self.check(v, self.types[name], path, errs)
            else:
                errs.append(f"{path}: type {name} is not in the package")
        elif kind == "unparsed":
            errs.append(f"{path}: check.py cannot read this type ({t[1]})")

    def validate(self, v, root):
        errs = []
        self.check(v, ("ref", root), root, errs)
        return errs


def load_api_types(repo):
    d = os.environ.get("PXED_KUBEVIRT_API") or os.path.join(repo, KUBEVIRT_API_DIR, "package")
    try:
        pkg = json.load(open(os.path.join(d, "package.json")))
    except OSError:
        fail(f"{d} is missing; install it from the npm registry:\n  {KUBEVIRT_API_INSTALL}")
    if (pkg["name"], pkg["version"]) != KUBEVIRT_API:
        fail(f"{d} holds {pkg['name']}@{pkg['version']}, not {KUBEVIRT_API[0]}@{KUBEVIRT_API[1]}:\n  rm -r {KUBEVIRT_API_DIR} && {KUBEVIRT_API_INSTALL}")
    kv = TsTypes(open(os.path.join(d, "dist/kubevirt/index.d.ts")).read(), generated=True)
    nm = TsTypes(open(os.path.join(d, "dist/nmstate/index.d.ts")).read(), generated=False)
    for types, root in ((kv, "V1VirtualMachineInstance"), (nm, "V1NodeNetworkConfigurationPolicy"), (nm, "NodeNetworkConfigurationInterface")):
        if types.types.get(root, ("unparsed",))[0] == "unparsed":
            fail(f"{KUBEVIRT_API[0]}: no readable {root} in the package")
    ok(f"{KUBEVIRT_API[0]}@{KUBEVIRT_API[1]}: {len(kv.types)} KubeVirt and {len(nm.types)} NMState API types read")
    return kv, nm


# ---------------------------------------------------------------------------------------
# The NetworkAttachmentDefinition CRD's schema (k8snetworkplumbingwg/multus-cni,
# deployments/multus-daemonset.yml) and what the CNI plugins in these NADs accept
# (containernetworking/plugins: bridge, tuning, static IPAM; cnv-* are OpenShift's copies).

NAD_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "k8s.cni.cncf.io/v1"},
        "kind": {"const": "NetworkAttachmentDefinition"},
        "metadata": {"type": "object"},
        "spec": {"type": "object", "properties": {"config": {"type": "string"}}, "additionalProperties": False},
    },
    "additionalProperties": False,
}
BRIDGE_KEYS = {"type", "bridge", "isGateway", "isDefaultGateway", "forceAddress", "ipMasq", "mtu", "hairpinMode", "ipam",
               "promiscMode", "vlan", "vlanTrunk", "preserveDefaultVlan", "enabledad", "macspoofchk", "disableContainerInterface",
               "portIsolation", "capabilities", "args", "dns", "runtimeConfig"}
TUNING_KEYS = {"type", "mac", "mtu", "promisc", "allmulti", "sysctl", "txQLen", "capabilities", "args", "runtimeConfig"}
CNI_PLUGINS = {"bridge": BRIDGE_KEYS, "cnv-bridge": BRIDGE_KEYS, "tuning": TUNING_KEYS, "cnv-tuning": TUNING_KEYS}
CNI_CAPABILITIES = {"ips", "mac", "portMappings", "bandwidth", "ipRanges", "dns", "aliases", "infinibandGUID", "deviceID"}
STATIC_IPAM_KEYS = {"type", "addresses", "routes", "dns"}


def check_nad(variant, nad, plugin):
    try:
        jsonschema.validate(nad, NAD_SCHEMA)
    except jsonschema.ValidationError as e:
        fail(f"{variant}: NAD does not fit the NetworkAttachmentDefinition CRD schema: {e.message}")
    try:
        cni = json.loads(nad["spec"]["config"])
    except json.JSONDecodeError as e:
        fail(f"{variant}: NAD spec.config is not JSON: {e}")
    if set(cni) - {"cniVersion", "name", "plugins", "disableCheck", "disableGC"} or not isinstance(cni.get("plugins"), list):
        fail(f"{variant}: NAD config is not a CNI config list: {sorted(cni)}")
    for p in cni["plugins"]:
        known = CNI_PLUGINS.get(p.get("type"))
        if known is None:
            fail(f"{variant}: NAD plugin type {p.get('type')!r} is not one of {sorted(CNI_PLUGINS)}")
        if set(p) - known:
            fail(f"{variant}: NAD plugin {p['type']} has unknown keys {sorted(set(p) - known)}")
        if set(p.get("capabilities", {})) - CNI_CAPABILITIES:
            fail(f"{variant}: NAD plugin {p['type']} has unknown capabilities {sorted(p['capabilities'])}")
        if "ipam" in p and set(p["ipam"]) - STATIC_IPAM_KEYS:
            fail(f"{variant}: NAD static IPAM has unknown keys {sorted(p['ipam'])}")
    first = cni["plugins"][0]
    if nad["metadata"]["name"] != "pxe-net-conf" or cni["name"] != "pxe-net-conf":
        fail(f"{variant}: NAD must be named pxe-net-conf")
    if first["type"] != plugin or first.get("bridge") != "br1" or "ipam" not in first:
        fail(f"{variant}: NAD plugin {first} is not {plugin} on br1 with ipam")
    if first["ipam"].get("type") != "static" or not first.get("capabilities", {}).get("ips"):
        fail(f"{variant}: NAD lacks static IPAM with the ips capability")
    if [p["type"] for p in cni["plugins"][1:]] != [plugin.replace("bridge", "tuning")]:
        fail(f"{variant}: NAD must chain {plugin.replace('bridge', 'tuning')} after {plugin}")
    ok(f"{variant}: NAD fits the NAD CRD schema; config JSON: {' + '.join(p['type'] for p in cni['plugins'])} on br1 with static IPAM, no unknown keys")
    return first["bridge"]


# ---------------------------------------------------------------------------------------


def one(objs, kind, where):
    found = [o for _, o in objs if o["kind"] == kind]
    if len(found) != 1:
        fail(f"{where}: expected one {kind}, found {len(found)}")
    return found[0]


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_vmi(where, vmi, kv, nad_name, hosts, profiles, defaults):
    errs = kv.validate(vmi, "V1VirtualMachineInstance")
    if errs:
        fail(f"{where}: VMI {vmi['metadata']['name']} does not fit KubeVirt's API: " + "; ".join(errs[:5]))
    if vmi["apiVersion"] != "kubevirt.io/v1":
        fail(f"{where}: VMI apiVersion {vmi['apiVersion']}")
    spec = vmi["spec"]
    ifaces = {i["name"]: i for i in spec["domain"]["devices"]["interfaces"]}
    networks = {n["name"]: n for n in spec["networks"]}
    pxe = ifaces.get("pxe-net")
    if not pxe or "bridge" not in pxe or pxe.get("bootOrder") != 1:
        fail(f"{where}: VMI needs a bridge interface pxe-net with bootOrder 1")
    if "masquerade" not in ifaces.get("default", {}) or "pod" not in networks.get("default", {}):
        fail(f"{where}: VMI needs the masquerade default interface on the pod network")
    if networks["pxe-net"]["multus"]["networkName"] != nad_name:
        fail(f"{where}: VMI network pxe-net is not the NAD")
    disks = spec["domain"]["devices"]["disks"]
    if [d.get("bootOrder") for d in disks] != [2] or "containerDisk" not in spec["volumes"][0]:
        fail(f"{where}: VMI needs one containerdisk with bootOrder 2")
    if spec.get("nodeSelector", {}).get(PLACEMENT[0]) != PLACEMENT[1]:
        fail(f"{where}: VMI {vmi['metadata']['name']} is not pinned to nodes labelled {PLACEMENT[0]}={PLACEMENT[1]}")
    efi = spec["domain"].get("firmware", {}).get("bootloader", {}).get("efi")
    mac = pxe["macAddress"].lower()
    if mac not in hosts or hosts[mac]["profile"] not in profiles:
        fail(f"{where}: VMI MAC {mac} is not mapped to a profile in pxed's config")
    host = hosts[mac]
    if efi is None:
        return mac, host["profile"], "BIOS"
    # KubeVirt defaults secureBoot to true. Such a VM refuses the unsigned ipxe.efi, so pxed
    # must boot it through the signed shim -> GRUB chain: its host needs secure_boot = true
    # (or [defaults] secure_boot) and a profile GRUB can run.
    secure_vm = efi.get("secureBoot", True) is not False
    secure_host = host.get("secure_boot", defaults.get("secure_boot", False))
    if secure_vm and not secure_host:
        fail(f"{where}: UEFI VMI {vmi['metadata']['name']} has Secure Boot on (KubeVirt's default): its host {mac} needs secure_boot = true, or the VMI secureBoot: false")
    if not secure_vm:
        return mac, host["profile"], "UEFI, secureBoot false (iPXE)"
    if spec["domain"].get("features", {}).get("smm", {}).get("enabled") is False:
        fail(f"{where}: UEFI VMI {vmi['metadata']['name']} with Secure Boot needs SMM")
    prof = profiles[host["profile"]]
    if "script" in prof or "chain" in prof:
        fail(f"{where}: Secure Boot host {mac} has an iPXE-only profile {host['profile']}")
    for url in [prof.get("kernel", "")] + prof.get("initrd", []):
        if "://" in url:
            fail(f"{where}: Secure Boot host {mac} loads {url}: Debian's signed GRUB has no HTTP, so kernel and initrd must be files under boot_dir")
    return mac, host["profile"], "UEFI, Secure Boot (shim -> GRUB)"


def main(repo):
    kube = os.path.join(repo, "deploy/kubernetes")
    pxed_toml = open(os.path.join(repo, "config/kubevirt.toml")).read()
    readme = open(os.path.join(repo, "README.md")).read()
    kv, nm = load_api_types(repo)

    rendered = {}
    for name in ("openshift", "upstream", "examples", "."):
        objs = build(os.path.join(kube, name))
        why_not = compare_with_kubectl(name, os.path.join(kube, name), objs)
        rendered[name] = objs
        ok(f"{name}: renders {len(objs)} objects" + ("; same as kubectl kustomize" if why_not is None else f" (not compared with kubectl kustomize: {why_not})"))
    if keyed(rendered["."]) != keyed(rendered["openshift"]):
        fail("deploy/kubernetes (the default) is not the openshift variant")
    ok("the default kustomization is the openshift variant")

    for path, o in [x for objs in rendered.values() for x in objs]:
        if o["kind"] not in CRDS:
            try:
                kubernetes_validate.validate(o, K8S_VERSION, strict=True)
            except Exception as e:  # ValidationError and friends
                fail(f"{path}: {o['kind']} {o['metadata']['name']} does not validate: {e}")
    ok(f"every core object validates against Kubernetes {K8S_VERSION} (strict)")

    # No token anywhere in the manifests: the README's step creates the Secret.
    for kfile in kustomizations(kube):
        if "secretGenerator" in (yaml.safe_load(open(kfile)) or {}):
            fail(f"{os.path.relpath(kfile)}: a secretGenerator puts the admin token in the manifests")
    for name, objs in rendered.items():
        for _, o in objs:
            if o["kind"] == "Secret":
                fail(f"{name}: Secret {o['metadata']['name']} in the manifests (every apply would reset it; tokens do not belong in git)")
    for d, _, files in os.walk(kube):
        for f in files:
            if "replace-with-a-long-" + "random-token" in open(os.path.join(d, f), errors="replace").read():
                fail(f"{os.path.join(d, f)}: holds the old placeholder token")
    if TOKEN_STEP not in readme:
        fail(f"README.md lacks the step that creates the token: {TOKEN_STEP}")
    ok(f"no Secret and no token in any kustomization; the README creates {TOKEN_SECRET} with a random token")

    raw_dep = yaml.safe_load(open(os.path.join(kube, "base/deployment.yaml")))
    base_kust = yaml.safe_load(open(os.path.join(kube, "base/kustomization.yaml")))
    raw_image = raw_dep["spec"]["template"]["spec"]["containers"][0]["image"]
    images = {i["name"]: i for i in base_kust.get("images", [])}
    if raw_image not in images or "newName" not in images[raw_image] or "newTag" not in images[raw_image]:
        fail(f"base: the Deployment's image {raw_image!r} has no kustomize images: entry with newName and newTag")
    if f"kustomize edit set image {raw_image}=" not in readme:
        fail("README.md does not say how to set the image (kustomize edit set image)")
    want_image = f"{images[raw_image]['newName']}:{images[raw_image]['newTag']}"
    ok(f"base: image {raw_image!r} is set by kustomize images: ({want_image}), documented in the README")

    for variant, plugin in VARIANTS.items():
        objs = rendered[variant]
        nad = one(objs, "NetworkAttachmentDefinition", variant)
        dep = one(objs, "Deployment", variant)
        cm = one(objs, "ConfigMap", variant)
        svc = one(objs, "Service", variant)
        if any(o["kind"] == "VirtualMachineInstance" for _, o in objs):
            fail(f"{variant}: creates a VMI; the demo belongs in examples/")
        bridge = check_nad(variant, nad, plugin)

        cfg_text = cm["data"]["pxed.toml"]
        if cfg_text != pxed_toml:
            fail(f"{variant}: ConfigMap pxed.toml differs from config/kubevirt.toml")
        cfg = tomllib.loads(cfg_text)
        if cfg.get("hosts"):
            fail(f"{variant}: the base config has hosts {sorted(cfg['hosts'])}; demo hosts belong in examples/")
        if cfg["profiles"].get("disk", {}).get("action") != "local":
            fail(f"{variant}: the base config lacks [profiles.disk] action = \"local\"")
        if "router" in cfg["dhcp"]:
            fail(f"{variant}: the base config hands out router {cfg['dhcp']['router']}; pxed is no gateway")
        server = cfg["server"]["address"]
        http_ip = cfg["http"]["listen"].rsplit(":", 1)[0]
        if http_ip != server:
            fail(f"{variant}: [http] listen {cfg['http']['listen']} is not on net1's address {server} only")
        admin_ip = ipaddress.ip_address(cfg["admin"]["listen"].rsplit(":", 1)[0])
        if not admin_ip.is_loopback:
            fail(f"{variant}: [admin] listen {cfg['admin']['listen']} is not loopback (the Deployment moves it to the pod IP)")
        ok(f"{variant}: ConfigMap = config/kubevirt.toml: no hosts, [profiles.disk] local, no router, boot HTTP on {server} only, admin on loopback unless overridden")

        nets = json.loads(dep["spec"]["template"]["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"])
        if len(nets) != 1 or nets[0]["name"] != nad["metadata"]["name"]:
            fail(f"{variant}: Deployment does not attach pxe-net-conf: {nets}")
        if nets[0].get("interface") != cfg["server"]["interface"]:
            fail(f"{variant}: pod interface {nets[0].get('interface')} != pxed interface {cfg['server']['interface']}")
        if nets[0]["ips"][0].split("/")[0] != server:
            fail(f"{variant}: pod address {nets[0]['ips']} != pxed address {server}")
        if ipaddress.ip_interface(nets[0]["ips"][0]).network != ipaddress.ip_network(cfg["dhcp"]["subnet"]):
            fail(f"{variant}: pod address {nets[0]['ips'][0]} is not in [dhcp] subnet {cfg['dhcp']['subnet']}")
        ok(f"{variant}: Deployment attaches {nets[0]['name']} as {nets[0]['interface']} with {nets[0]['ips'][0]} = pxed's [server] and [dhcp] subnet")

        spec = dep["spec"]
        pod = spec["template"]["spec"]
        c = pod["containers"][0]
        if spec["replicas"] != 1 or spec["strategy"]["type"] != "Recreate":
            fail(f"{variant}: Deployment must be one replica with Recreate")
        psc, sc = pod.get("securityContext", {}), c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True or sc["capabilities"].get("drop") != ["ALL"] or sc["capabilities"].get("add"):
            fail(f"{variant}: container securityContext is not restrictive: {sc}")
        if not psc.get("runAsNonRoot") or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            fail(f"{variant}: pod must run as non-root with the RuntimeDefault seccomp profile")
        if psc.get("sysctls") != [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]:
            fail(f"{variant}: the only sysctl must be net.ipv4.ip_unprivileged_port_start=0: {psc.get('sysctls')}")
        if any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")) or sc.get("privileged") or any(p.get("hostPort") for p in c["ports"]):
            fail(f"{variant}: pod uses the host's namespaces or ports")
        vols = {v["name"]: v for v in pod["volumes"]}
        for v in vols.values():
            if not set(v) - {"name"} <= RESTRICTED_V2_VOLUMES:
                fail(f"{variant}: volume {v['name']} is of a type restricted-v2 refuses: {sorted(set(v) - {'name'})}")
        if variant == "openshift":
            fixed = [f"{k}={ctx[k]}" for ctx in (psc, sc) for k in ASSIGNED_IDS if k in ctx]
            if fixed:
                fail(f"openshift: restricted-v2 assigns UID, GID and fsGroup from the namespace's range; the pod fixes {fixed}")
            ok("openshift: no runAsUser/runAsGroup/fsGroup/supplementalGroups (restricted-v2 assigns them), no capabilities, RuntimeDefault seccomp, only the safe sysctl, restricted-v2 volume types")
        else:
            if (psc.get("runAsUser"), psc.get("runAsGroup")) != IMAGE_USER or not psc.get("fsGroup"):
                fail(f"{variant}: plain Kubernetes needs runAsUser/runAsGroup {IMAGE_USER} (the image's user) and an fsGroup for the PVC: {psc}")
            if any(k in sc for k in ASSIGNED_IDS):
                fail(f"{variant}: the container overrides the pod's IDs")
            ok(f"{variant}: runs as {psc['runAsUser']}:{psc['runAsGroup']} with fsGroup {psc['fsGroup']} (state PVC writable), restricted Pod Security level")

        mounts = {m["name"]: m for m in c["volumeMounts"]}
        if vols["state"]["persistentVolumeClaim"]["claimName"] != one(objs, "PersistentVolumeClaim", variant)["metadata"]["name"]:
            fail(f"{variant}: state volume is not the PVC")
        if mounts["state"]["mountPath"] != cfg["server"]["state_dir"]:
            fail(f"{variant}: PVC mounted at {mounts['state']['mountPath']}, state_dir is {cfg['server']['state_dir']}")
        if os.path.dirname(cfg["admin"]["token_file"]) != mounts["admin-token"]["mountPath"]:
            fail(f"{variant}: token_file {cfg['admin']['token_file']} is not under the Secret mount {mounts['admin-token']['mountPath']}")
        if vols["admin-token"]["secret"]["secretName"] != TOKEN_SECRET or vols["admin-token"]["secret"].get("optional"):
            fail(f"{variant}: token volume is not the required Secret {TOKEN_SECRET}")
        if vols["config"]["configMap"]["name"] != cm["metadata"]["name"] or "subPath" in mounts["config"]:
            fail(f"{variant}: config must be the whole ConfigMap {cm['metadata']['name']} as a directory (a subPath mount never updates)")
        env = [(e["name"], e) for e in c["env"]]
        env_d = dict(env)
        if os.path.join(mounts["config"]["mountPath"], "pxed.toml") != env_d["PXED_CONFIG"]["value"]:
            fail(f"{variant}: PXED_CONFIG does not point into the ConfigMap mount")
        ok(f"{variant}: config from the whole ConfigMap (reloadable), token from Secret {TOKEN_SECRET}, state on the PVC")

        admin_port = int(cfg["admin"]["listen"].rsplit(":", 1)[1])
        names = [n for n, _ in env]
        if env_d.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "status.podIP":
            fail(f"{variant}: POD_IP does not come from the downward API (status.podIP)")
        if env_d.get("PXED_ADMIN_LISTEN", {}).get("value") != f"$(POD_IP):{admin_port},127.0.0.1:{admin_port}" or names.index("POD_IP") > names.index("PXED_ADMIN_LISTEN"):
            fail(f"{variant}: PXED_ADMIN_LISTEN must be $(POD_IP):{admin_port},127.0.0.1:{admin_port}, defined after POD_IP")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        if ports["admin"] != admin_port or svc["spec"]["ports"][0]["targetPort"] != "admin" or svc["spec"]["type"] != "ClusterIP":
            fail(f"{variant}: admin port / ClusterIP Service disagree with the admin listener")
        for probe in ("readinessProbe", "livenessProbe"):
            g = c[probe]["httpGet"]
            if g["path"] != "/healthz" or g["port"] != "admin" or "host" in g:
                fail(f"{variant}: {probe} must GET /healthz on port admin at the pod IP")
        ok(f"{variant}: admin API on $(POD_IP):{admin_port} from the downward API and pod loopback (not net1), Service and probes on port admin")

        if c["image"] != want_image:
            fail(f"{variant}: image {c['image']} is not the images: entry {want_image}")
        node_sel = pod.get("nodeSelector", {})
        if node_sel.get(PLACEMENT[0]) != PLACEMENT[1]:
            fail(f"{variant}: Deployment is not pinned to nodes labelled {PLACEMENT[0]}={PLACEMENT[1]}")
        if "kubectl label node" not in readme or f"{PLACEMENT[0]}={PLACEMENT[1]}" not in readme:
            fail(f"README.md does not tell users to label nodes {PLACEMENT[0]}={PLACEMENT[1]}")
        resource = f"bridge.network.kubevirt.io/{bridge}"
        annotation = nad["metadata"].get("annotations", {}).get("k8s.v1.cni.cncf.io/resourceName")
        if variant == "openshift":
            res = c["resources"]
            if annotation != resource or res["requests"].get(resource) != "1" or res["limits"].get(resource) != "1":
                fail(f"openshift: NAD must announce {resource} and pxed must request it (bridge marker placement)")
            ok(f"openshift: node placement by label {PLACEMENT[0]}={PLACEMENT[1]} and by the bridge marker's {resource} (NAD annotation, pod request)")
        else:
            if annotation is not None:
                fail(f"{variant}: resourceName {annotation} needs KubeVirt's bridge marker, which plain clusters may lack")
            ok(f"{variant}: node placement by label {PLACEMENT[0]}={PLACEMENT[1]}")

        # Labels: the pxed labels stay on pxed's objects.
        for _, o in objs:
            if o["kind"] not in ("NetworkAttachmentDefinition",) and o["metadata"].get("labels", {}).get("app.kubernetes.io/name") != "pxed":
                fail(f"{variant}: {o['kind']} {o['metadata']['name']} lacks pxed's labels")
        if not selects(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]) or not selects(svc["spec"]["selector"], spec["template"]["metadata"]["labels"]):
            fail(f"{variant}: the Deployment's or Service's selector does not select pxed's pod")

        # The examples, applied on top of this variant.
        ex = rendered["examples"]
        kinds = sorted({o["kind"] for _, o in ex})
        if kinds != ["ConfigMap", "VirtualMachineInstance"]:
            fail(f"examples: must hold only the demo VMIs and pxed's config, not {kinds}")
        ex_cm = one(ex, "ConfigMap", "examples")
        if ex_cm["metadata"]["name"] != cm["metadata"]["name"] or ex_cm["metadata"].get("labels") != cm["metadata"].get("labels"):
            fail("examples: the demo config must replace pxed-config, with pxed's labels")
        ex_text = ex_cm["data"]["pxed.toml"]
        if not ex_text.startswith(pxed_toml):
            fail("examples: pxed.toml must be config/kubevirt.toml followed by the demo (it replaces the ConfigMap)")
        ex_cfg = tomllib.loads(ex_text)
        subnet = ipaddress.ip_network(ex_cfg["dhcp"]["subnet"])
        if ex_cfg["dhcp"].get("router") == server:
            fail("examples: router must be the VLAN's gateway, never pxed")
        for pname, prof in ex_cfg["profiles"].items():
            for url in [prof.get("kernel", "")] + prof.get("initrd", []) + re.findall(r"https?://\S+", prof.get("cmdline", "")):
                host = re.match(r"(?:https?://)?([^/:]*)", url).group(1)
                try:
                    if ipaddress.ip_address(host) in subnet and str(ipaddress.ip_address(host)) != server:
                        fail(f"examples: profile {pname} loads from {host}, a server on the boot VLAN that nothing deploys")
                except ValueError:
                    pass
        hosts = {k.lower().replace("-", ":"): v for k, v in ex_cfg["hosts"].items()}
        firmwares = set()
        for _, vmi in ex:
            if vmi["kind"] != "VirtualMachineInstance":
                continue
            labels = vmi["metadata"].get("labels", {})
            if not labels:
                fail(f"examples: VMI {vmi['metadata']['name']} has no labels of its own")
            for what, sel in (("Deployment", spec["selector"]["matchLabels"]), ("Service", svc["spec"]["selector"])):
                if selects(sel, labels):
                    fail(f"examples on {variant}: VMI {vmi['metadata']['name']}'s labels {labels} match the pxed {what} selector {sel}: its virt-launcher pod would join pxed")
            mac, profile, firmware = check_vmi("examples", vmi, kv, nad["metadata"]["name"], hosts, ex_cfg["profiles"], ex_cfg.get("defaults", {}))
            firmwares.add(firmware)
            if variant == "openshift":
                ok(f"examples: VMI {vmi['metadata']['name']} fits KubeVirt's API; {firmware}; pxe-net {mac} (bootOrder 1) boots profile {profile}; containerdisk bootOrder 2; on {PLACEMENT[0]} nodes")
        want = {"BIOS", "UEFI, secureBoot false (iPXE)", "UEFI, Secure Boot (shim -> GRUB)"}
        if firmwares != want:
            fail(f"examples: need a BIOS VMI, a UEFI VMI with secureBoot: false and one with KubeVirt's default Secure Boot, have {sorted(firmwares)}")
        ok(f"examples on {variant}: no VMI label set matches pxed's Deployment or Service selector; demo config = config/kubevirt.toml + demo, no server on the VLAN that nothing deploys")

    # The NNCP example: not applied by any kustomization, creates the bridge the NADs use.
    nncp_path = os.path.join(kube, "nmstate/br1-nncp.yaml")
    nncp = yaml.safe_load(open(nncp_path))
    if any(o["kind"] == "NodeNetworkConfigurationPolicy" for objs in rendered.values() for _, o in objs):
        fail("an NNCP is in a kustomization; it must stay an example the README points to")
    errs = nm.validate(nncp, "V1NodeNetworkConfigurationPolicy")
    for n, iface in enumerate(nncp["spec"]["desiredState"]["interfaces"]):
        errs += nm.validate(iface, "NodeNetworkConfigurationInterface")
    if errs or nncp["apiVersion"] != "nmstate.io/v1":
        fail(f"nmstate/br1-nncp.yaml does not fit NMState's API: {'; '.join(errs[:5])}")
    ifaces = {i["name"]: i for i in nncp["spec"]["desiredState"]["interfaces"]}
    br = ifaces.get("br1", {})
    ports = [p["name"] for p in br.get("bridge", {}).get("port", [])]
    if br.get("type") != "linux-bridge" or br.get("state") != "up" or not ports or not all(ifaces.get(p, {}).get("type") == "vlan" for p in ports):
        fail("nmstate/br1-nncp.yaml must bring up linux-bridge br1 with a VLAN interface as its port")
    if nncp["spec"].get("nodeSelector") != {PLACEMENT[0]: PLACEMENT[1]}:
        fail(f"nmstate/br1-nncp.yaml must select the nodes labelled {PLACEMENT[0]}={PLACEMENT[1]}, as pxed does")
    if "deploy/kubernetes/nmstate/br1-nncp.yaml" not in readme:
        fail("README.md does not point to deploy/kubernetes/nmstate/br1-nncp.yaml")
    ok(f"nmstate/br1-nncp.yaml fits NMState's API: br1 on VLAN {ifaces[ports[0]]['vlan']['id']} of {ifaces[ports[0]]['vlan']['base-iface']}, on {PLACEMENT[0]} nodes; in no kustomization; in the README")

    # The README's pod and host sections, and the unit's Documentation=.
    for needle in ("kubectl apply -k deploy/kubernetes/examples", "secureBoot: false", "(#capabilities)"):
        if needle not in readme:
            fail(f"README.md lacks {needle!r}")
    unit = open(os.path.join(repo, "deploy/systemd/pxed.service")).read()
    doc = re.search(r"^Documentation=file://(\S+)$", unit, re.M)
    if not doc or not re.search(rf"install [^\n]*README\.md {re.escape(doc.group(1))}(\s|$)", readme):
        fail("deploy/systemd/pxed.service: Documentation= must name the file the README's host steps install")
    ok(f"README: examples, secureBoot: false and the capabilities link; pxed.service's Documentation= {doc.group(1)} is installed by the host steps")
    print("all deploy/kubernetes checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
