variable "name" {
  description = "Prefix of the alarms, topic and roles."
  type        = string
}

variable "cluster_name" {
  description = "The EKS cluster whose container logs go to CloudWatch."
  type        = string
}

variable "oidc_provider_arn" {
  description = "The cluster's OIDC provider."
  type        = string
}

variable "oidc_provider_host" {
  description = "The OIDC issuer without its scheme."
  type        = string
}

variable "rds_instance_id" {
  description = "The database instance watched."
  type        = string
}

variable "alb_arn_suffix" {
  description = "The load balancer watched."
  type        = string
}

variable "target_group_arn_suffix" {
  description = "The proxy's target group watched."
  type        = string
}

variable "alarm_emails" {
  description = "Addresses the alarms are mailed to (each confirms its subscription)."
  type        = list(string)
}
