# Logs and alarms: the KMS key every log group is encrypted with, the
# containers' logs to CloudWatch (the CloudWatch Observability add-on, with
# its own IRSA role), and alarms on the database, the load balancer and the
# proxy's targets, sent to an SNS topic.

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

module "kms" {
  source      = "../kms"
  alias       = "${var.name}-logs"
  description = "${var.name}: CloudWatch log groups and the alarm topic"
  service_principals = [
    {
      sid     = "CloudWatchLogs"
      service = "logs.${data.aws_region.current.region}.amazonaws.com"
      actions = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
      conditions = [{
        test     = "ArnLike"
        variable = "kms:EncryptionContext:aws:logs:arn"
        values   = ["arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:*"]
      }]
    },
    {
      sid     = "CloudWatchAlarms"
      service = "cloudwatch.amazonaws.com"
      actions = ["kms:Decrypt", "kms:GenerateDataKey*"]
    },
  ]
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = module.kms.arn
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.alarm_emails)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

# --- container logs ------------------------------------------------------------

module "cloudwatch_agent_role" {
  source = "../iam-role"
  name   = "${var.name}-cloudwatch-agent"
  service_account = {
    oidc_provider_arn  = var.oidc_provider_arn
    oidc_provider_host = var.oidc_provider_host
    namespace          = "amazon-cloudwatch"
    name               = "cloudwatch-agent"
  }
  managed_policies = ["CloudWatchAgentServerPolicy"]
}

resource "aws_eks_addon" "cloudwatch" {
  cluster_name             = var.cluster_name
  addon_name               = "amazon-cloudwatch-observability"
  service_account_role_arn = module.cloudwatch_agent_role.arn
}

# --- alarms ----------------------------------------------------------------------

locals {
  alarms = {
    database-cpu = {
      namespace = "AWS/RDS", metric = "CPUUtilization", statistic = "Average", threshold = 80
      operator  = "GreaterThanThreshold", dimensions = { DBInstanceIdentifier = var.rds_instance_id }
    }
    database-free-storage = {
      namespace = "AWS/RDS", metric = "FreeStorageSpace", statistic = "Minimum", threshold = 5368709120
      operator  = "LessThanThreshold", dimensions = { DBInstanceIdentifier = var.rds_instance_id }
    }
    edge-5xx = {
      namespace = "AWS/ApplicationELB", metric = "HTTPCode_Target_5XX_Count", statistic = "Sum", threshold = 50
      operator  = "GreaterThanThreshold", dimensions = { LoadBalancer = var.alb_arn_suffix }
    }
    proxy-unhealthy = {
      namespace = "AWS/ApplicationELB", metric = "UnHealthyHostCount", statistic = "Maximum", threshold = 0
      operator  = "GreaterThanThreshold", dimensions = { LoadBalancer = var.alb_arn_suffix, TargetGroup = var.target_group_arn_suffix }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each            = local.alarms
  alarm_name          = "${var.name}-${each.key}"
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  statistic           = each.value.statistic
  threshold           = each.value.threshold
  comparison_operator = each.value.operator
  dimensions          = each.value.dimensions
  period              = 300
  evaluation_periods  = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}
