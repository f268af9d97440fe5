# An IAM role taken either by an AWS service (the trust policy names that
# service's principal only) or, through IAM roles for service accounts
# (IRSA), by one Kubernetes service account (the cluster's OIDC provider,
# that account as subject and STS as audience, nothing else); with the AWS
# managed policies named and at most one inline policy.

data "aws_partition" "current" {}

data "aws_iam_policy_document" "assume" {
  dynamic "statement" {
    for_each = var.service == null ? [] : [var.service]
    content {
      actions = var.service_actions
      principals {
        type        = "Service"
        identifiers = [statement.value]
      }
    }
  }

  dynamic "statement" {
    for_each = var.service_account == null ? [] : [var.service_account]
    content {
      actions = ["sts:AssumeRoleWithWebIdentity"]
      principals {
        type        = "Federated"
        identifiers = [statement.value.oidc_provider_arn]
      }
      condition {
        test     = "StringEquals"
        variable = "${statement.value.oidc_provider_host}:sub"
        values   = ["system:serviceaccount:${statement.value.namespace}:${statement.value.name}"]
      }
      condition {
        test     = "StringEquals"
        variable = "${statement.value.oidc_provider_host}:aud"
        values   = ["sts.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role" "this" {
  name               = var.name
  assume_role_policy = data.aws_iam_policy_document.assume.json

  lifecycle {
    precondition {
      condition     = (var.service == null) != (var.service_account == null)
      error_message = "Give exactly one of service and service_account."
    }
  }
}

resource "aws_iam_role_policy_attachment" "this" {
  for_each   = toset(var.managed_policies)
  role       = aws_iam_role.this.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/${each.value}"
}

resource "aws_iam_role_policy" "this" {
  count  = var.inline_policy == null ? 0 : 1
  name   = var.inline_policy.name
  role   = aws_iam_role.this.id
  policy = var.inline_policy.json
}
