# The platform's secrets in AWS Secrets Manager and who may read them: the
# External Secrets Operator, through IRSA, reads this platform's secret and
# the RDS-managed database secret, nothing else. Terraform makes the secret
# but never its value (see terraform/README.md): no key passes through the
# Terraform state.

module "kms" {
  source      = "../kms"
  alias       = "${replace(var.name, "/", "-")}-secrets"
  description = "${var.name}: the platform's secrets"
}

# JSON with DATABASE_URL's companions: JWT_PRIVATE_KEY, JWT_KEY_ID,
# JWT_RETIRED_KEYS, GATEHOUSE_IDENTITY_KEY, FIRST_SUPERUSER,
# FIRST_SUPERUSER_PASSWORD, SMTP_USER, SMTP_PASSWORD.
resource "aws_secretsmanager_secret" "app" {
  #checkov:skip=CKV2_AWS_57:the signing and identity keys are rotated by the documented procedure (old public key kept published), not by a Lambda
  name                    = "${var.name}/app"
  description             = "Gatehouse keys and first superuser (JSON); the database credentials are RDS's own secret"
  kms_key_id              = module.kms.arn
  recovery_window_in_days = 30
}

module "external_secrets_role" {
  source = "../iam-role"
  name   = "${replace(var.name, "/", "-")}-external-secrets"
  service_account = {
    oidc_provider_arn  = var.oidc_provider_arn
    oidc_provider_host = var.oidc_provider_host
    namespace          = var.namespace
    name               = var.service_account
  }
  inline_policy = {
    name = "read-platform-secrets"
    json = data.aws_iam_policy_document.external_secrets.json
  }
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
    resources = [module.kms.arn, var.database_kms_key_arn]
  }
}
