# S3 for the ALB's access logs and for database dumps, and ECR for the two
# images. Buckets are private, encrypted, versioned, TLS-only and expire
# what they no longer need.

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

module "kms" {
  source      = "../kms"
  alias       = "${var.name}-storage"
  description = "${var.name}: backups bucket and image repositories"
}

locals {
  account = data.aws_caller_identity.current.account_id
}

data "aws_elb_service_account" "this" {}

# Who writes into the logs bucket: the ALB and S3's own access logging.
data "aws_iam_policy_document" "log_writers" {
  statement {
    sid       = "AlbAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["arn:${data.aws_partition.current.partition}:s3:::${var.name}-logs-${local.account}/alb/AWSLogs/${local.account}/*"]
    principals {
      type        = "AWS"
      identifiers = [data.aws_elb_service_account.this.arn]
    }
  }
  statement {
    sid       = "S3ServerAccessLogs"
    actions   = ["s3:PutObject"]
    resources = ["arn:${data.aws_partition.current.partition}:s3:::${var.name}-logs-${local.account}/s3/*"]
    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

module "logs" {
  source            = "./bucket"
  name              = "${var.name}-logs-${local.account}"
  kms_key_arn       = null
  expiration_days   = var.log_retention_days
  access_log_bucket = null
  extra_policy_json = data.aws_iam_policy_document.log_writers.json
}

module "backups" {
  source            = "./bucket"
  name              = "${var.name}-backups-${local.account}"
  kms_key_arn       = module.kms.arn
  expiration_days   = var.backup_retention_days
  access_log_bucket = module.logs.name
  extra_policy_json = null
}

# --- images ------------------------------------------------------------------

resource "aws_ecr_repository" "this" {
  for_each             = toset(["host", "proxy"])
  name                 = "${var.repository_prefix}/${each.value}"
  image_tag_mutability = "IMMUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = module.kms.arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  for_each   = aws_ecr_repository.this
  repository = each.value.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "keep the last 30 images"
      selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = 30 }
      action       = { type = "expire" }
    }]
  })
}
