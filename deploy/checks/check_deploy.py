"""Checks of deploy/: the Helm chart rendered for each overlay by Helm's own
template engine (helm-python-sdk, which carries Helm's Go SDK), linted,
validated against the Kubernetes schemas, scanned by checkov, and held to
the properties the platform promises; the Dockerfiles linted by hadolint and
checkov.

Run by `cargo xtask test` inside the venv it makes (deploy/requirements.txt);
by hand: `target/deploy-venv/bin/python deploy/checks/check_deploy.py`.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import json
import os
import re
import sys
import tempfile
import tomllib
from pathlib import Path

import hcl2
import helm_python as helm
import kubernetes_validate
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checklib import Checks, run_tool  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "platform"
OVERLAYS = DEPLOY / "overlays"
DOCKERFILES = sorted((DEPLOY / "docker").glob("*.Dockerfile"))
RELEASE, NAMESPACE = "platform", "gatehouse"

# Kinds that come from operators (External Secrets, the AWS Load Balancer
# Controller, the Prometheus Operator): kubernetes-validate has no schema for
# them, so the checks below look at their fields themselves.
CUSTOM_KINDS = {
    ("external-secrets.io/v1", "ExternalSecret"),
    ("external-secrets.io/v1", "SecretStore"),
    ("elbv2.k8s.aws/v1beta1", "TargetGroupBinding"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}
WORKLOADS = {"Deployment", "StatefulSet", "Job"}


@contextlib.contextmanager
def helm_quietly():
    """Helm's Go side logs (at INFO) every symbolic link it follows, and the
    chart's links to deploy/*.toml are meant; its errors come back as
    exceptions, so its stderr is not needed."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def kubernetes_version() -> str:
    """The version EKS runs: the default of terraform/envs/prod's kubernetes_version."""
    with open(ROOT / "terraform" / "envs" / "prod" / "variables.tf") as f:
        variables = hcl2.load(f)
    for block in variables.get("variable", []):
        if "kubernetes_version" in block:
            default = block["kubernetes_version"]["default"]
            return str(default[0] if isinstance(default, list) else default).strip('"')
    raise SystemExit("terraform/envs/prod/variables.tf has no kubernetes_version")


def variants() -> dict[str, dict]:
    """Each overlay, and the aws overlay with the options it leaves off, so
    every template is rendered at least once."""
    dev = load_yaml(OVERLAYS / "dev" / "values.yaml")
    aws = deep_merge(load_yaml(OVERLAYS / "aws" / "values.yaml"),
                     json.loads((DEPLOY / "checks" / "terraform-outputs.example.json").read_text()))
    aws_ingress = deep_merge(aws, {
        "edge": {"mode": "ingress", "ingress": {"host": "app.example.com"}},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "database": {"external": {"caBundle": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}},
    })
    existing = deep_merge(dev, {"secrets": {"source": "existingSecret", "existingSecret": "gatehouse-keys"}})
    return {"dev": dev, "aws": aws, "aws-ingress": aws_ingress, "dev-existing-secret": existing}


def render(chart: helm.Chart, values: dict) -> list[dict]:
    with helm_quietly():
        manifests = chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", {})
                objects.append(doc)
    return objects


def pod_spec(obj: dict) -> dict | None:
    if obj["kind"] in WORKLOADS:
        return obj["spec"]["template"]["spec"]
    return None


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def skipped_checks(obj: dict) -> set[str]:
    return {v.split("=", 1)[0] for k, v in obj["metadata"].get("annotations", {}).items() if k.startswith("checkov.io/skip")}


def config_map_file(objects: list[dict], name: str, key: str) -> dict:
    return tomllib.loads(named(objects, "ConfigMap", name)["data"][key])


# --- what the network policies allow, evaluated like a CNI would ----------

def _selects(selector: dict | None, labels: dict) -> bool:
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    assert not selector.get("matchExpressions"), "the checks evaluate matchLabels only"
    return True


def _peer_allows(peer: dict, src: dict) -> bool:
    if "ipBlock" in peer:
        return src.get("ip") is not None and ipaddress.ip_address(src["ip"]) in ipaddress.ip_network(peer["ipBlock"]["cidr"])
    in_namespace = src.get("namespace") == NAMESPACE
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], src.get("namespace_labels", {})):
            return False
        return "podSelector" not in peer or _selects(peer["podSelector"], src.get("labels", {}))
    return in_namespace and _selects(peer.get("podSelector"), src.get("labels", {}))


def ingress_allowed(policies: list[dict], src: dict, dst_labels: dict, port: int) -> bool:
    """Whether src may open a TCP connection to a pod labelled dst_labels."""
    applying = [p for p in policies if _selects(p["spec"]["podSelector"], dst_labels) and "Ingress" in p["spec"]["policyTypes"]]
    if not applying:
        return True
    for policy in applying:
        for rule in policy["spec"].get("ingress", []) or []:
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports):
                continue
            peers = rule.get("from")
            if not peers or any(_peer_allows(peer, src) for peer in peers):
                return True
    return False


def egress_allowed(policies: list[dict], src_labels: dict, dst: dict, port: int, protocol: str = "TCP") -> bool:
    applying = [p for p in policies if _selects(p["spec"]["podSelector"], src_labels) and "Egress" in p["spec"]["policyTypes"]]
    if not applying:
        return True
    for policy in applying:
        for rule in policy["spec"].get("egress", []) or []:
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports):
                continue
            peers = rule.get("to")
            if not peers or any(_peer_allows(peer, dst) for peer in peers):
                return True
    return False


def pod_labels(component: str) -> dict:
    return {"app.kubernetes.io/name": "gatehouse", "app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/component": component}


def pod_peer(component: str) -> dict:
    return {"namespace": NAMESPACE, "labels": pod_labels(component), "namespace_labels": {"kubernetes.io/metadata.name": NAMESPACE}}


# --- the checks ------------------------------------------------------------

def main() -> int:
    checks = Checks("deploy")
    with helm_quietly():
        chart = helm.Chart.load(str(CHART))
    k8s_version = kubernetes_version()
    rendered: dict[str, list[dict]] = {}
    all_values = variants()

    @checks.check("values.schema.json accepts both overlays and refuses unknown or mistyped values")
    def _():
        for name, values in all_values.items():
            chart.validate_schema(chart.merge_values(values))
        for bad in ({"proxy": {"replicaz": 2}}, {"host": {"drainSeconds": "25"}}, {"platform": "gke"},
                    {"secrets": {"source": "generate"}, "platform": "aws"}, {"terraformOutputs": {"rds_port": "x"}}):
            try:
                chart.validate_schema(chart.merge_values(bad))
            except helm.HelmError:
                continue
            raise AssertionError(f"the schema accepted {bad}")

    @checks.check(f"helm lint (strict) passes for every overlay, Kubernetes {k8s_version}")
    def _():
        for name, values in all_values.items():
            with helm_quietly():
                report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version=f"v{k8s_version}.0")
            problems = [m for m in report["messages"] if m["severity"] >= 2] + [{"error": e} for e in report["errors"]]
            problems = [p for p in problems if "icon is recommended" not in p["error"]]
            assert not problems, f"{name}: {problems}"

    @checks.check("the chart renders for every overlay with Helm's template engine")
    def _():
        for name, values in all_values.items():
            rendered[name] = render(chart, values)
            assert rendered[name], f"{name} rendered nothing"

    if not rendered:
        return checks.finish()

    @checks.check(f"every rendered object is valid for Kubernetes {k8s_version} (kubernetes-validate, strict)")
    def _():
        counted = 0
        for name, objects in rendered.items():
            for obj in objects:
                if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
                    continue
                try:
                    kubernetes_validate.validate(obj, k8s_version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    raise AssertionError(f"{name}: {obj['kind']} {obj['metadata']['name']}: {e.message} at {list(e.path)}")
                counted += 1
        return f"{counted} objects"

    @checks.check("objects of operators' kinds carry the fields their controllers need")
    def _():
        for name, objects in rendered.items():
            for obj in objects:
                kind, spec = obj["kind"], obj.get("spec", {})
                if kind == "ExternalSecret":
                    assert spec["secretStoreRef"]["name"] and spec["target"]["name"] and spec["refreshInterval"]
                    assert all(d["remoteRef"]["key"] for d in spec["data"]), obj
                    assert all(e["extract"]["key"] for e in spec["dataFrom"]), obj
                elif kind == "SecretStore":
                    aws = spec["provider"]["aws"]
                    assert aws["service"] == "SecretsManager" and aws["region"]
                    assert aws["auth"]["jwt"]["serviceAccountRef"]["name"]
                elif kind == "TargetGroupBinding":
                    assert spec["targetGroupARN"].startswith("arn:aws:elasticloadbalancing:") and spec["targetType"] == "ip"
                    assert spec["serviceRef"]["name"] and spec["serviceRef"]["port"]
                elif kind == "ServiceMonitor":
                    assert spec["selector"]["matchLabels"] and spec["endpoints"][0]["port"] == "admin"

    @checks.check("checkov passes on the rendered manifests (skips only with a reason beside the resource)")
    def _():
        with tempfile.TemporaryDirectory() as out:
            for name, objects in rendered.items():
                (Path(out) / f"{name}.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
            for name, objects in rendered.items():
                for obj in objects:
                    for key, value in obj["metadata"]["annotations"].items():
                        if key.startswith("checkov.io/skip"):
                            check_id, _, reason = value.partition("=")
                            assert re.fullmatch(r"CKV2?_K8S_\d+", check_id) and len(reason) > 20, f"{obj['metadata']['name']}: {value}"
            report = run_checkov(["-d", out, "--framework", "kubernetes"])
        return report

    @checks.check("hadolint passes on the Dockerfiles")
    def _():
        for dockerfile in DOCKERFILES:
            run_tool(["hadolint", "--failure-threshold", "info", str(dockerfile)])
        return f"{len(DOCKERFILES)} Dockerfiles"

    @checks.check("checkov passes on the Dockerfiles")
    def _():
        with tempfile.TemporaryDirectory() as out:
            for dockerfile in DOCKERFILES:
                (Path(out) / dockerfile.name.replace(".Dockerfile", "")).mkdir()
                (Path(out) / dockerfile.name.replace(".Dockerfile", "") / "Dockerfile").write_text(dockerfile.read_text())
            return run_checkov(["-d", out, "--framework", "dockerfile"])

    @checks.check("images: pinned base images by digest, a non-root user, a health check, labels")
    def _():
        for dockerfile in DOCKERFILES:
            text = dockerfile.read_text()
            for line in re.findall(r"^FROM\s+(\S+)", text, re.M):
                assert re.search(r"@sha256:[0-9a-f]{64}$", line), f"{dockerfile.name}: {line} is not pinned by digest"
            final = text[text.rindex("\nFROM "):]
            assert re.search(r"^USER 65532:65532$", final, re.M), f"{dockerfile.name}: no non-root USER"
            assert "distroless" in final.splitlines()[1], f"{dockerfile.name}: the final image should have no shell"
            assert re.search(r"^HEALTHCHECK .*CMD", final, re.M), f"{dockerfile.name}: no HEALTHCHECK"
            assert "org.opencontainers.image.title" in final, f"{dockerfile.name}: no labels"

    @checks.check("the Grafana dashboard charts every metric the proxy and host export, and only those")
    def _():
        dashboard = json.loads((ROOT / "deploy/grafana/gatehouse.json").read_text())
        queried = set()
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                queried |= {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"gatehouse_[a-z_]+", target["expr"])}
        exported = set()
        for source in ("proxy/src/metrics.rs", "host/src/metrics.rs"):
            exported |= set(re.findall(r"# TYPE (gatehouse_[a-z_]+) ", (ROOT / source).read_text()))
            exported |= set(re.findall(r'header\(\s*&mut out,\s*"(gatehouse_[a-z_]+)"', (ROOT / source).read_text()))
        assert exported, "no metric found in the sources"
        assert queried <= exported, f"charted but not exported: {sorted(queried - exported)}"
        assert exported <= queried, f"exported but not charted: {sorted(exported - queried)}"

    for name, objects in rendered.items():
        register_property_checks(checks, name, objects, all_values[name])
    register_config_checks(checks, rendered)

    return checks.finish()


def run_checkov(args: list[str]) -> str:
    out = run_tool(["checkov", *args, "--quiet", "--compact", "--output", "json", "--skip-download"], ok_codes=(0, 1))
    reports = json.loads(out)
    if isinstance(reports, dict):
        reports = [reports]
    failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    if failed:
        lines = [f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})" for c in failed]
        raise AssertionError("checkov failed:\n  " + "\n  ".join(lines))
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    skipped = sum(r.get("summary", {}).get("skipped", 0) for r in reports)
    return f"{passed} passed, {skipped} skipped with a reason"


def register_property_checks(checks: Checks, name: str, objects: list[dict], values: dict) -> None:
    aws = values.get("platform") == "aws"
    workloads = [o for o in objects if o["kind"] in WORKLOADS]
    policies = by_kind(objects, "NetworkPolicy")

    @checks.check(f"{name}: no container runs as root, with privileges, or with a writable root file system")
    def _():
        for obj in workloads:
            spec = pod_spec(obj)
            pod_ctx = spec.get("securityContext", {})
            assert pod_ctx.get("runAsNonRoot") is True and pod_ctx.get("runAsUser", 0) > 0, obj["metadata"]["name"]
            assert pod_ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", obj["metadata"]["name"]
            assert spec.get("automountServiceAccountToken") is False, obj["metadata"]["name"]
            assert not (spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC")), obj["metadata"]["name"]
            assert all("hostPath" not in v for v in spec.get("volumes", [])), obj["metadata"]["name"]
            for container in spec["containers"] + spec.get("initContainers", []):
                ctx = container.get("securityContext", {})
                where = f"{obj['metadata']['name']}/{container['name']}"
                assert ctx.get("runAsNonRoot") is True, where
                assert ctx.get("runAsUser", pod_ctx["runAsUser"]) != 0, where
                assert ctx.get("allowPrivilegeEscalation") is False and ctx.get("privileged") is False, where
                assert ctx.get("readOnlyRootFilesystem") is True, where
                assert ctx.get("capabilities", {}).get("drop") == ["ALL"] and not ctx["capabilities"].get("add"), where

    @checks.check(f"{name}: every container has requests and limits; every long-running one has probes")
    def _():
        unprobed = set()
        for obj in workloads:
            for container in pod_spec(obj)["containers"]:
                where = f"{obj['metadata']['name']}/{container['name']}"
                for part in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(container.get("resources", {}).get(part, {})), f"{where}: {part}"
                if obj["kind"] == "Job":
                    continue
                if "livenessProbe" not in container or "readinessProbe" not in container:
                    assert {"CKV_K8S_8", "CKV_K8S_9"} <= skipped_checks(obj), f"{where}: no probes and no reason"
                    unprobed.add(obj["metadata"]["name"])
        assert unprobed <= {f"{RELEASE}-mailer"}, f"only the mailer (no listener) may go without probes: {unprobed}"

    @checks.check(f"{name}: the proxy and host roll without losing capacity and drain within their grace period")
    def _():
        drains = {
            "host": config_map_file(objects, RELEASE, "host.toml")["server"]["drain_seconds"],
            "proxy": config_map_file(objects, RELEASE, "proxy.toml")["drain_seconds"],
        }
        for component in ("proxy", "host"):
            deployment = named(objects, "Deployment", f"{RELEASE}-{component}")
            strategy = deployment["spec"]["strategy"]
            assert strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 0
            spec = pod_spec(deployment)
            container = spec["containers"][0]
            pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            drain = drains[component]
            assert spec["terminationGracePeriodSeconds"] > pre_stop + drain, f"{component}: grace {spec['terminationGracePeriodSeconds']} <= {pre_stop} + {drain}"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert spec.get("topologySpreadConstraints"), f"{component}: no topology spread"
            pdb = named(objects, "PodDisruptionBudget", f"{RELEASE}-{component}")
            assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        host = named(objects, "Deployment", f"{RELEASE}-host")
        hpa = named(objects, "HorizontalPodAutoscaler", f"{RELEASE}-host")
        assert hpa["spec"]["minReplicas"] >= 2 and "replicas" not in host["spec"], "the host: two replicas or more, the HPA's to set"
        assert hpa["spec"]["scaleTargetRef"]["name"] == host["metadata"]["name"]
        manifest = config_map_file(objects, RELEASE, "host.toml")
        ports = {p["name"]: p["containerPort"] for p in pod_spec(host)["containers"][0]["ports"]}
        assert manifest["server"]["listen"].endswith(f":{ports['http']}") and manifest["server"]["admin_listen"].endswith(f":{ports['admin']}")
        proxy_config = config_map_file(objects, RELEASE, "proxy.toml")
        proxy_ports = {p["name"]: p["containerPort"] for p in pod_spec(named(objects, "Deployment", f"{RELEASE}-proxy"))["containers"][0]["ports"]}
        assert proxy_config["listen"].endswith(f":{proxy_ports['http']}") and proxy_config["admin_listen"].endswith(f":{proxy_ports['admin']}"), proxy_ports

    @checks.check(f"{name}: the proxy is reached from outside; the host, PostgreSQL and the admin ports are not")
    def _():
        services = by_kind(objects, "Service")
        exposed = [s["metadata"]["name"] for s in services if s["spec"].get("type") in ("NodePort", "LoadBalancer")]
        proxy_service = named(objects, "Service", f"{RELEASE}-proxy")
        if aws:
            assert exposed == [], exposed
            assert by_kind(objects, "TargetGroupBinding") or by_kind(objects, "Ingress"), "nothing brings the ALB's traffic"
        else:
            assert exposed == [f"{RELEASE}-proxy"], exposed
            assert proxy_service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP", "nodePort": 30080}]
        for service in services:
            for port in service["spec"]["ports"]:
                if service["spec"].get("clusterIP") != "None":
                    assert port.get("targetPort") != "admin", f"{service['metadata']['name']} serves an admin port"

    @checks.check(f"{name}: network policies deny by default; only the proxy reaches the host, only the host, the setup Job and the mailer reach PostgreSQL")
    def _():
        components = ["proxy", "host", "mailer", "setup"] + (["postgresql"] if not aws else [])
        deny = [p for p in policies if p["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "gatehouse", "app.kubernetes.io/instance": RELEASE}}]
        assert deny and deny[0]["spec"]["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny[0]["spec"] and "egress" not in deny[0]["spec"]
        outsider = {"ip": "203.0.113.7", "namespace": "elsewhere", "labels": {}, "namespace_labels": {}}
        host_port = values_get(values, "host.port", 8081)
        for component in components:
            target = pod_labels("host")
            allowed = ingress_allowed(policies, pod_peer(component), target, host_port) and egress_allowed(policies, pod_labels(component), pod_peer("host"), host_port)
            assert allowed == (component == "proxy"), f"{component} -> host:{host_port} is {'allowed' if allowed else 'denied'}"
        assert not ingress_allowed(policies, outsider, pod_labels("host"), host_port), "the host is reachable from outside the namespace"
        assert not ingress_allowed(policies, outsider, pod_labels("host"), 9081), "the host's admin port is open to anyone"
        if not aws:
            assert ingress_allowed(policies, outsider, pod_labels("proxy"), 8080), "the proxy refuses clients"
            for component in components:
                allowed = ingress_allowed(policies, pod_peer(component), pod_labels("postgresql"), 5432) and egress_allowed(policies, pod_labels(component), pod_peer("postgresql"), 5432)
                assert allowed == (component in ("host", "setup", "mailer")), f"{component} -> postgresql is {'allowed' if allowed else 'denied'}"
            assert not ingress_allowed(policies, outsider, pod_labels("postgresql"), 5432)
        else:
            alb = {"ip": "10.40.1.10", "namespace": None, "labels": {}, "namespace_labels": {}}
            assert ingress_allowed(policies, alb, pod_labels("proxy"), 8080), "the ALB cannot reach the proxy"
            assert not ingress_allowed(policies, outsider, pod_labels("proxy"), 8080), "the proxy is open beyond the ALB's subnets"
            rds = {"ip": "10.40.96.20", "namespace": None, "labels": {}, "namespace_labels": {}}
            for component in components:
                allowed = egress_allowed(policies, pod_labels(component), rds, 5432)
                assert allowed == (component in ("host", "setup", "mailer")), f"{component} -> RDS is {'allowed' if allowed else 'denied'}"
        for component in components:
            assert not egress_allowed(policies, pod_labels(component), outsider, 443), f"{component} may reach the internet on 443"
        workload_labels = [pod_spec(o) and o["spec"]["template"]["metadata"]["labels"] for o in objects if o["kind"] in WORKLOADS]
        for labels in workload_labels:
            assert any(_selects(p["spec"]["podSelector"], labels) for p in deny), labels

    @checks.check(f"{name}: secrets stay out of the manifests' plain parts; the setup Job runs before the new version")
    def _():
        for obj in objects:
            if obj["kind"] != "Secret":
                text = yaml.safe_dump(obj)
                assert "PRIVATE KEY-----" not in text and not re.search(r"postgres://[^{:/@]+:[^{@]+@", text), f"{obj['kind']} {obj['metadata']['name']} holds a secret"
            if obj["kind"] in WORKLOADS:
                for container in pod_spec(obj)["containers"]:
                    for env in container.get("env", []):
                        if env["name"] in ("DATABASE_URL", "JWT_PRIVATE_KEY", "GATEHOUSE_IDENTITY_KEY", "FIRST_SUPERUSER_PASSWORD", "SMTP_PASSWORD", "POSTGRES_PASSWORD"):
                            assert "secretKeyRef" in env.get("valueFrom", {}), f"{obj['metadata']['name']}: {env['name']} is not from a Secret"
        secrets = by_kind(objects, "Secret")
        source = values_get(values, "secrets.source", "generate")
        if source == "generate":
            assert len(secrets) == 1 and {"DATABASE_URL", "JWT_PRIVATE_KEY", "JWT_KEY_ID", "GATEHOUSE_IDENTITY_KEY", "FIRST_SUPERUSER", "FIRST_SUPERUSER_PASSWORD"} <= set(secrets[0]["data"])
        else:
            assert secrets == [], "only generated development secrets may be in a release"
        if source == "externalSecrets":
            account = [o for o in objects if o["kind"] == "ServiceAccount" and "eks.amazonaws.com/role-arn" in o["metadata"]["annotations"]]
            assert len(account) == 1 and account[0]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
        job = named(objects, "Job", f"{RELEASE}-setup")
        hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
        assert "pre-upgrade" in hooks and ("post-install" if values_get(values, "database.internal.enabled", True) else "pre-install") in hooks, hooks
        assert pod_spec(job)["containers"][0]["command"][:1] == ["/usr/local/bin/gatehouse-setup"]

    @checks.check(f"{name}: every object names its namespace and carries the chart's labels")
    def _():
        for obj in objects:
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{obj['kind']} {obj['metadata']['name']}"
            assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE, obj["metadata"]["name"]


def register_config_checks(checks: Checks, rendered: dict[str, list[dict]]) -> None:
    host_file = tomllib.loads((DEPLOY / "host.toml").read_text())
    proxy_file = tomllib.loads((DEPLOY / "proxy.toml").read_text())
    dockerfile = (DEPLOY / "docker" / "host.Dockerfile").read_text()

    @checks.check("the host manifest in the cluster is deploy/host.toml, but for addresses, drain time and image paths")
    def _():
        for name, objects in rendered.items():
            deployed = config_map_file(objects, RELEASE, "host.toml")
            setup = config_map_file(objects, f"{RELEASE}-setup", "host.toml")
            assert deployed == setup, f"{name}: the setup Job and the host read different manifests"
            expected = copy.deepcopy(host_file)
            expected["server"] = {**expected.get("server", {}), "listen": "0.0.0.0:8081", "admin_listen": "0.0.0.0:9081",
                                  "drain_seconds": 25, "compile_cache": "/var/cache/gatehouse"}
            for component in expected["component"].values():
                component["file"] = "/opt/gatehouse/components/" + Path(component["file"]).name
                for database, folder in component.get("migrations", {}).items():
                    component["migrations"][database] = deployed_migrations_path(folder)
            for database in expected.get("database", {}).values():
                if "migrations" in database:
                    database["migrations"] = deployed_migrations_path(database["migrations"])
            assert deployed == expected, f"{name}: differs from deploy/host.toml: {diff(expected, deployed)}"

    @checks.check("the proxy configuration in the cluster is deploy/proxy.toml, but for addresses, the key source and the overlay's limits")
    def _():
        for name, objects in rendered.items():
            deployed = config_map_file(objects, RELEASE, "proxy.toml")
            values = variants()[name]
            expected = deep_merge(proxy_file, values.get("proxy", {}).get("config", {}))
            host = f"{RELEASE}-host.{NAMESPACE}.svc.cluster.local:8081"
            expected["listen"] = "0.0.0.0:8080"
            expected["admin_listen"] = "0.0.0.0:9091"
            expected["drain_seconds"] = values_get(values, "proxy.drainSeconds", 25)
            expected["upstream"]["runtime"]["addresses"] = [host]
            # Replicas are checked at the host's readiness endpoint.
            expected["upstream"]["runtime"]["health_check_path"] = "/readyz"
            expected["upstream"]["runtime"]["health_check_port"] = 9081
            expected["jwt"]["jwks_url"] = f"http://{host}/auth/api/v1/.well-known/jwks.json"
            # The frontend's export, where the proxy image puts it.
            expected["files"]["frontend"]["root"] = "/opt/gatehouse/frontend"
            if values.get("platform") == "aws":
                expected["trusted_proxies"] = values["terraformOutputs"]["public_subnet_cidrs"]
            assert deployed == expected, f"{name}: differs from deploy/proxy.toml: {diff(expected, deployed)}"

    @checks.check("the proxy image holds the frontend's export where the proxy configuration in the cluster names it")
    def _():
        proxy_dockerfile = (DEPLOY / "docker" / "proxy.Dockerfile").read_text()
        assert re.search(r"^COPY --from=\S+ \S*frontend/out /opt/gatehouse/frontend$", proxy_dockerfile, re.M), "no COPY of frontend/out"

    @checks.check("every component and migrations folder the manifest names is where the host image puts it")
    def _():
        copies = {}
        for sources, dest in re.findall(r"^COPY (?:--from=\S+ )?((?:\S+ )+)(\S+)$", dockerfile, re.M):
            for source in sources.split():
                copies[(dest.rstrip("/") + "/" + Path(source).name) if dest.endswith("/") else dest] = source
        for component in host_file["component"].values():
            image_path = "/opt/gatehouse/components/" + Path(component["file"]).name
            assert image_path in copies and copies[image_path].endswith("wasm32-wasip2/release/" + Path(component["file"]).name), image_path
            folders = list(component.get("migrations", {}).values())
            for folder in folders:
                source = os.path.normpath(os.path.join("deploy", folder))
                assert copies.get(deployed_migrations_path(folder)) == source, f"{folder}: the image has no {deployed_migrations_path(folder)} from {source}"
        for database in host_file.get("database", {}).values():
            if "migrations" in database:
                source = os.path.normpath(os.path.join("deploy", database["migrations"]))
                assert copies.get(deployed_migrations_path(database["migrations"])) == source


def deployed_migrations_path(folder: str) -> str:
    relative = re.sub(r"^(\.\./)*(plugins/)?", "", folder)
    relative = re.sub(r"/?migrations/?$", "", relative)
    return f"/opt/gatehouse/migrations/{relative}".rstrip("/")


def diff(expected, actual, path: str = "") -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in sorted(set(expected) | set(actual)):
            out += diff(expected.get(key, "<missing>"), actual.get(key, "<missing>"), f"{path}.{key}")
        return out
    return [] if expected == actual else [f"{path}: {expected!r} != {actual!r}"]


def values_get(values: dict, dotted: str, default):
    current = values
    for part in dotted.split("."):
        if not isinstance(current, dict) or part not in current:
            return default
        current = current[part]
    return current


if __name__ == "__main__":
    sys.exit(main())
