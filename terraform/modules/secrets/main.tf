# The platform's secrets in AWS Secrets Manager and who may read them: the
# External Secrets Operator, through IRSA, reads this platform's secret and
# the RDS-managed database secret, nothing else. Terraform makes the secret
# but never its value (see terraform/README.md): no key passes through the
# Terraform state.

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

resource "aws_kms_key" "this" {
  description         = "${var.name}: the platform's secrets"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.kms.json
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:a key policy's "*" resource is the key itself
  #checkov:skip=CKV_AWS_356:a key policy's "*" resource is the key itself
  #checkov:skip=CKV_AWS_109:the account administers its own key through IAM, as AWS's default key policy does
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

# JSON with DATABASE_URL's companions: JWT_PRIVATE_KEY, JWT_KEY_ID,
# JWT_RETIRED_KEYS, GATEHOUSE_IDENTITY_KEY, FIRST_SUPERUSER,
# FIRST_SUPERUSER_PASSWORD, SMTP_USER, SMTP_PASSWORD.
resource "aws_secretsmanager_secret" "app" {
  #checkov:skip=CKV2_AWS_57:the signing and identity keys are rotated by the documented procedure (old public key kept published), not by a Lambda
  name                    = "${var.name}/app"
  description             = "Gatehouse keys and first superuser (JSON); the database credentials are RDS's own secret"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 30
}

data "aws_iam_policy_document" "external_secrets_assume" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_host}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "external_secrets" {
  name               = "${replace(var.name, "/", "-")}-external-secrets"
  assume_role_policy = data.aws_iam_policy_document.external_secrets_assume.json
}

data "aws_iam_policy_document" "external_secrets" {
  statement {
    sid       = "ReadThisPlatformsSecrets"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [aws_secretsmanager_secret.app.arn, var.database_secret_arn]
  }
  statement {
    sid       = "DecryptThem"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn, var.database_kms_key_arn]
  }
}

resource "aws_iam_role_policy" "external_secrets" {
  name   = "read-platform-secrets"
  role   = aws_iam_role.external_secrets.id
  policy = data.aws_iam_policy_document.external_secrets.json
}
