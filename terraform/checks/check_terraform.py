"""Checks of terraform/: every file parses (python-hcl2), checkov passes
with justified skips only, every module call is wired to its module (inputs
declared, required ones given, outputs that exist), the Helm aws overlay
reads only outputs the root module produces, and the security defaults the
platform promises are in the code.

Run by `cargo xtask test` inside the venv it makes (deploy/checks/requirements.txt);
by hand: `target/deploy-venv/bin/python terraform/checks/check_terraform.py`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import hcl2
import yaml

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
PROD = TERRAFORM / "envs" / "prod"
sys.path.insert(0, str(ROOT / "deploy" / "checks"))
from checklib import Checks, run_tool  # noqa: E402


def unwrap(value):
    """python-hcl2 wraps attribute values in lists; take the value out."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def strip(value) -> str:
    return str(unwrap(value)).strip('"')


def parse_dir(directory: Path) -> dict[str, list]:
    merged: dict[str, list] = {}
    for path in sorted(directory.glob("*.tf")):
        with open(path) as f:
            for key, blocks in hcl2.load(f).items():
                merged.setdefault(key, []).extend(blocks)
    return merged


def named_blocks(parsed: dict, kind: str) -> dict[str, dict]:
    return {name: body for block in parsed.get(kind, []) for name, body in block.items()}


def resources(parsed: dict, rtype: str) -> dict[str, dict]:
    return {name: body for block in parsed.get("resource", []) for t, items in block.items() if t == rtype for name, body in items.items()}


def main() -> int:
    checks = Checks("terraform")
    files = sorted(TERRAFORM.rglob("*.tf"))
    modules: dict[str, dict] = {}

    @checks.check("every .tf file parses (python-hcl2)")
    def _():
        for path in files:
            with open(path) as f:
                hcl2.load(f)
        for directory in sorted({p.parent for p in files}):
            modules[str(directory.relative_to(TERRAFORM))] = parse_dir(directory)
        return f"{len(files)} files in {len(modules)} modules"

    @checks.check("checkov passes on terraform/ (skips only with a reason beside the resource)")
    def _():
        for path in files:
            for skip in re.findall(r"#\s*checkov:skip=([^\n]*)", path.read_text()):
                check_id, _, reason = skip.partition(":")
                assert re.fullmatch(r"CKV2?_AWS_\d+", check_id) and len(reason) > 20, f"{path.name}: skip without a reason: {skip}"
        out = run_tool(["checkov", "-d", str(TERRAFORM), "--framework", "terraform", "--quiet", "--compact",
                        "--output", "json", "--skip-download"], ok_codes=(0, 1))
        report = json.loads(out)
        report = report[0] if isinstance(report, list) else report
        failed = report.get("results", {}).get("failed_checks", [])
        if failed:
            lines = [f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})" for c in failed]
            raise AssertionError("checkov failed:\n  " + "\n  ".join(lines))
        summary = report.get("summary", {})
        return f"{summary.get('passed', 0)} passed, {summary.get('skipped', 0)} skipped with a reason"

    if not modules:
        return checks.finish()
    prod = modules["envs/prod"]

    @checks.check("versions are pinned: Terraform, every provider, every module; state in S3 with a lock table documented")
    def _():
        settings = unwrap(prod["terraform"])
        assert strip(settings["required_version"]).startswith(">="), "required_version"
        for block in settings["required_providers"]:
            for name, spec in block.items():
                assert re.match(r"^~> ?\d+\.\d+", strip(unwrap(spec)["version"])), f"provider {name}: {spec}"
        backend = unwrap(settings["backend"])
        assert "s3" in backend, "state is kept in S3"
        example = (PROD / "backend.hcl.example").read_text()
        assert "dynamodb_table" in example and "encrypt" in json.dumps(backend), "the lock table and encryption"
        for name, body in named_blocks(prod, "module").items():
            source = strip(body["source"])
            assert source.startswith("../../modules/") or "version" in body, f"module {name}: {source} is not pinned"

    @checks.check("every variable has a type and a description; every output a description")
    def _():
        for module, parsed in modules.items():
            for name, body in named_blocks(parsed, "variable").items():
                assert "type" in body and strip(body.get("description", "")), f"{module}: variable {name}"
            for name, body in named_blocks(parsed, "output").items():
                assert strip(body.get("description", "")), f"{module}: output {name}"

    @checks.check("every module call gives the module the inputs it declares, and reads outputs that exist")
    def _():
        calls = 0
        for caller, parsed in modules.items():
            directory = TERRAFORM / caller
            text = "\n".join(p.read_text() for p in directory.glob("*.tf"))
            for name, body in named_blocks(parsed, "module").items():
                source = strip(body["source"])
                if not source.startswith("."):
                    continue
                module = modules[str((directory / source).resolve().relative_to(TERRAFORM))]
                declared = named_blocks(module, "variable")
                given = {k for k in body if not k.startswith("__") and k not in ("source", "version", "depends_on", "providers")}
                assert given <= set(declared), f"{caller}: module {name}: unknown inputs {sorted(given - set(declared))}"
                required = {v for v, spec in declared.items() if "default" not in spec}
                assert required <= given, f"{caller}: module {name}: missing inputs {sorted(required - given)}"
                outputs = set(named_blocks(module, "output"))
                for used in set(re.findall(rf"module\.{name}\.(\w+)", text)):
                    assert used in outputs, f"{caller}: module.{name}.{used} is not an output of {source}"
                calls += 1
        return f"{calls} calls"

    @checks.check("every output the Helm aws overlay and the chart read is an output of terraform/envs/prod, by the same name")
    def _():
        outputs = set(named_blocks(prod, "output"))
        overlay = yaml.safe_load((ROOT / "deploy" / "overlays" / "aws" / "values.yaml").read_text())
        wanted = set(overlay["terraformOutputs"])
        templates = "\n".join(p.read_text() for p in (ROOT / "deploy" / "helm" / "platform" / "templates").iterdir())
        used = set(re.findall(r'"platform\.terraformOutput" \(dict "root" \S+ "name" "(\w+)"\)', templates))
        used |= set(re.findall(r'index \.Values\.terraformOutputs "(\w+)"', templates))
        assert used, "found no output read by the templates"
        assert used <= wanted, f"the chart reads outputs the overlay does not list: {sorted(used - wanted)}"
        assert wanted <= outputs, f"the overlay lists outputs the root module lacks: {sorted(wanted - outputs)}"
        example = json.loads((ROOT / "deploy" / "checks" / "terraform-outputs.example.json").read_text())["terraformOutputs"]
        assert set(example) <= outputs and wanted <= set(example), "the example outputs and the root module's differ"
        return f"{len(wanted)} outputs"

    @checks.check("security defaults: RDS, EKS, ALB, KMS, IRSA, S3 and no static AWS keys")
    def _():
        rds = resources(modules["modules/rds"], "aws_db_instance")["this"]
        for key, value in {"multi_az": True, "publicly_accessible": False, "deletion_protection": True, "storage_encrypted": True,
                           "iam_database_authentication_enabled": True, "performance_insights_enabled": True,
                           "manage_master_user_password": True, "skip_final_snapshot": False}.items():
            assert unwrap(rds[key]) is value, f"RDS {key}"
        assert strip(rds["kms_key_id"]) == "${module.kms.arn}", "RDS encrypted with its own KMS key"
        assert unwrap(named_blocks(prod, "module")["rds"]["backup_retention_days"]) == 7, "seven days of backups"
        params = {strip(p["name"]): strip(p["value"]) for p in resources(modules["modules/rds"], "aws_db_parameter_group")["this"]["parameter"]}
        assert params.get("rds.force_ssl") == "1", "TLS required"

        eks = resources(modules["modules/eks"], "aws_eks_cluster")["this"]
        assert set(unwrap(eks["enabled_cluster_log_types"])) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
        assert strip(unwrap(eks["encryption_config"])["resources"]) in ("secrets", "['secrets']")
        vpc = unwrap(eks["vpc_config"])
        assert unwrap(vpc["endpoint_private_access"]) is True
        assert "length(var.public_access_cidrs) > 0" in strip(vpc["endpoint_public_access"]), "public endpoint only with CIDRs"

        alb = resources(modules["modules/edge"], "aws_lb")["this"]
        assert unwrap(alb["drop_invalid_header_fields"]) is True and strip(alb["desync_mitigation_mode"]) == "strictest"
        http = resources(modules["modules/edge"], "aws_lb_listener")["http"]
        assert strip(unwrap(http["default_action"])["type"]) == "redirect"
        assert "TLS13" in strip(resources(modules["modules/edge"], "aws_lb_listener")["https"]["ssl_policy"])

        # Customer-managed keys: made by modules/kms only, rotated, with a key
        # policy; each module that encrypts data has a key of its own.
        for module, parsed in modules.items():
            keys = resources(parsed, "aws_kms_key")
            assert module == "modules/kms" or not keys, f"{module}: a KMS key made outside modules/kms"
        key = resources(modules["modules/kms"], "aws_kms_key")["this"]
        assert unwrap(key["enable_key_rotation"]) is True and "aws_iam_policy_document" in strip(key["policy"]), "KMS key rotation and policy"
        for module in ("eks", "rds", "secrets", "storage", "observability"):
            call = named_blocks(modules[f"modules/{module}"], "module").get("kms", {})
            assert strip(call.get("source", "")) == "../kms", f"modules/{module} has its own KMS key"

        # IRSA roles: the service account as subject and STS as audience.
        trust = json.dumps(modules["modules/iam-role"]["data"])
        assert "}:sub" in trust and "}:aud" in trust and "system:serviceaccount:" in trust and "sts.amazonaws.com" in trust, "IRSA trust conditions"

        bucket = modules["modules/storage/bucket"]
        for rtype in ("aws_s3_bucket_public_access_block", "aws_s3_bucket_versioning", "aws_s3_bucket_lifecycle_configuration",
                      "aws_s3_bucket_server_side_encryption_configuration", "aws_s3_bucket_policy"):
            assert resources(bucket, rtype), rtype
        assert resources(modules["modules/network"], "aws_flow_log"), "VPC flow logs"

        for path in files:
            text = path.read_text()
            assert not re.search(r"\b(access_key|secret_key)\s*=", text), f"{path}: static AWS keys"
            assert not re.search(r"AKIA[0-9A-Z]{16}", text), f"{path}: an access key id"

    @checks.check("the chart's checks validate against the Kubernetes version EKS runs")
    def _():
        version = strip(named_blocks(prod, "variable")["kubernetes_version"]["default"])
        assert re.fullmatch(r"1\.\d+", version), version
        return f"Kubernetes {version}"

    return checks.finish()


if __name__ == "__main__":
    sys.exit(main())
