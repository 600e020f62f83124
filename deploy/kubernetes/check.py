#!/usr/bin/env python3
"""Offline checks of deploy/kubernetes: every manifest of both variants parses; core kinds
validate against the Kubernetes schemas bundled in the kubernetes-validate package; the
KubeVirt and Multus objects have the fields the guide needs; and the MAC, network name,
bridge, interface and addresses agree across the NAD, the VMI, the Deployment and pxed's
config. Prints one line per check; exits 1 on the first disagreement.

Usage: check.py REPO_DIR   (run with a Python that has kubernetes-validate and PyYAML)
"""
import json
import os
import sys
import tomllib

import kubernetes_validate
import yaml

K8S_VERSION = "1.30.0"
CRDS = {"NetworkAttachmentDefinition", "VirtualMachineInstance"}


def fail(msg):
    print(f"FAIL {msg}")
    sys.exit(1)


def ok(msg):
    print(f"ok   {msg}")


def load(dirpath):
    """Objects of a kustomization, following `resources` into directories."""
    kust = yaml.safe_load(open(os.path.join(dirpath, "kustomization.yaml")))
    out = []
    for r in kust.get("resources", []):
        p = os.path.normpath(os.path.join(dirpath, r))
        if os.path.isdir(p):
            out += load(p)
        else:
            for doc in yaml.safe_load_all(open(p)):
                if doc:
                    out.append((os.path.relpath(p), doc))
    return out


def one(objs, kind):
    found = [o for _, o in objs if o["kind"] == kind]
    if len(found) != 1:
        fail(f"expected one {kind}, found {len(found)}")
    return found[0]


def main(repo):
    kube = os.path.join(repo, "deploy/kubernetes")
    pxed_toml = open(os.path.join(repo, "config/kubevirt.toml")).read()
    for variant, plugin in [("openshift", "cnv-bridge"), ("upstream", "bridge")]:
        objs = load(os.path.join(kube, variant))
        for path, o in objs:
            if o["kind"] in CRDS:
                continue
            try:
                kubernetes_validate.validate(o, K8S_VERSION, strict=True)
            except Exception as e:  # ValidationError and friends
                fail(f"{variant}: {path}: {o['kind']} does not validate: {e}")
        ok(f"{variant}: {len(objs)} objects parse; core kinds validate against Kubernetes {K8S_VERSION} (strict)")

        nad = one(objs, "NetworkAttachmentDefinition")
        vmi = one(objs, "VirtualMachineInstance")
        dep = one(objs, "Deployment")
        cm = one(objs, "ConfigMap")
        svc = one(objs, "Service")
        cni = json.loads(nad["spec"]["config"])
        first = cni["plugins"][0]
        if nad["metadata"]["name"] != "pxe-net-conf" or cni["name"] != "pxe-net-conf":
            fail(f"{variant}: NAD must be named pxe-net-conf")
        if first["type"] != plugin or first["bridge"] != "br1":
            fail(f"{variant}: NAD plugin {first} is not {plugin} on br1")
        if first.get("ipam", {}).get("type") != "static" or not first.get("capabilities", {}).get("ips"):
            fail(f"{variant}: NAD lacks static IPAM with the ips capability")
        ok(f"{variant}: NAD pxe-net-conf is {plugin} on br1 with static IPAM")

        cfg_text = cm["data"]["pxed.toml"]
        if cfg_text != pxed_toml:
            fail(f"{variant}: ConfigMap pxed.toml differs from config/kubevirt.toml")
        cfg = tomllib.loads(cfg_text)

        nets = json.loads(dep["spec"]["template"]["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"])
        if len(nets) != 1 or nets[0]["name"] != nad["metadata"]["name"]:
            fail(f"{variant}: Deployment does not attach pxe-net-conf: {nets}")
        if nets[0].get("interface") != cfg["server"]["interface"]:
            fail(f"{variant}: pod interface {nets[0].get('interface')} != pxed interface {cfg['server']['interface']}")
        if nets[0]["ips"][0].split("/")[0] != cfg["server"]["address"]:
            fail(f"{variant}: pod address {nets[0]['ips']} != pxed address {cfg['server']['address']}")
        ok(f"{variant}: Deployment attaches {nets[0]['name']} as {nets[0]['interface']} with {nets[0]['ips'][0]} = pxed's [server]")

        spec = dep["spec"]
        pod = spec["template"]["spec"]
        c = pod["containers"][0]
        if spec["replicas"] != 1 or spec["strategy"]["type"] != "Recreate":
            fail(f"{variant}: Deployment must be one replica with Recreate")
        sc = c["securityContext"]
        if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True or sc["capabilities"]["drop"] != ["ALL"]:
            fail(f"{variant}: container securityContext is not restrictive: {sc}")
        if not pod["securityContext"].get("runAsNonRoot"):
            fail(f"{variant}: pod does not run as non-root")
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in pod["volumes"]}
        if vols["state"]["persistentVolumeClaim"]["claimName"] != one(objs, "PersistentVolumeClaim")["metadata"]["name"]:
            fail(f"{variant}: state volume is not the PVC")
        if mounts["state"] != cfg["server"]["state_dir"]:
            fail(f"{variant}: PVC mounted at {mounts['state']}, state_dir is {cfg['server']['state_dir']}")
        if os.path.dirname(cfg["admin"]["token_file"]) != mounts["admin-token"]:
            fail(f"{variant}: token_file {cfg['admin']['token_file']} is not under the Secret mount {mounts['admin-token']}")
        if vols["admin-token"]["secret"]["secretName"] != one(objs, "Secret")["metadata"]["name"]:
            fail(f"{variant}: token volume is not the Secret")
        if os.path.join(mounts["config"], "pxed.toml") != [e["value"] for e in c["env"] if e["name"] == "PXED_CONFIG"][0]:
            fail(f"{variant}: PXED_CONFIG does not point into the ConfigMap mount")
        admin_port = int(cfg["admin"]["listen"].rsplit(":", 1)[1])
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        if ports["admin"] != admin_port or svc["spec"]["ports"][0]["targetPort"] != "admin" or svc["spec"]["type"] != "ClusterIP":
            fail(f"{variant}: admin port / ClusterIP Service disagree with [admin] listen")
        for probe in ("readinessProbe", "livenessProbe"):
            if c[probe]["httpGet"]["path"] != "/healthz":
                fail(f"{variant}: {probe} does not use /healthz")
        ok(f"{variant}: config from the ConfigMap, token from the Secret, state on the PVC, probes on /healthz, restrictive securityContext")

        ifaces = {i["name"]: i for i in vmi["spec"]["domain"]["devices"]["interfaces"]}
        networks = {n["name"]: n for n in vmi["spec"]["networks"]}
        pxe = ifaces.get("pxe-net")
        if not pxe or "bridge" not in pxe or pxe.get("bootOrder") != 1:
            fail(f"{variant}: VMI needs a bridge interface pxe-net with bootOrder 1")
        if "masquerade" not in ifaces.get("default", {}) or "pod" not in networks.get("default", {}):
            fail(f"{variant}: VMI needs the masquerade default interface on the pod network")
        if networks["pxe-net"]["multus"]["networkName"] != nad["metadata"]["name"]:
            fail(f"{variant}: VMI network pxe-net is not the NAD")
        disks = vmi["spec"]["domain"]["devices"]["disks"]
        if [d.get("bootOrder") for d in disks] != [2] or "containerDisk" not in vmi["spec"]["volumes"][0]:
            fail(f"{variant}: VMI needs one containerdisk with bootOrder 2")
        mac = pxe["macAddress"].lower()
        hosts = {k.lower().replace("-", ":"): v for k, v in cfg["hosts"].items()}
        if mac not in hosts or hosts[mac]["profile"] not in cfg["profiles"]:
            fail(f"{variant}: VMI MAC {mac} is not mapped to a profile in pxed's config")
        ok(f"{variant}: VMI pxe-net {mac} (bootOrder 1) on pxe-net-conf boots profile {hosts[mac]['profile']}; containerdisk bootOrder 2")
    print("all deploy/kubernetes checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
