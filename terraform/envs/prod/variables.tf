variable "region" {
  description = "AWS region of everything (the original platform's eu-west-3, Paris)."
  type        = string
  default     = "eu-west-3"
}

variable "environment" {
  description = "Environment name, in resource names and tags."
  type        = string
  default     = "prod"
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,9}$", var.environment))
    error_message = "environment is a short lower-case word (e.g. prod, staging)."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the EKS control plane and nodes (the chart's checks validate against it)."
  type        = string
  default     = "1.35"
}

variable "vpc_cidr_block" {
  description = "The VPC's /16."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zones" {
  description = "Availability zones used (2 or 3), by name."
  type        = list(string)
  default     = ["eu-west-3a", "eu-west-3b", "eu-west-3c"]
}

variable "single_nat_gateway" {
  description = "One NAT gateway instead of one per zone: about $70 a month less, at the cost of a zone's outage cutting the nodes' way out."
  type        = bool
  default     = true
}

variable "eks_public_access_cidrs" {
  description = "Networks allowed to the cluster's public API endpoint (office, VPN); empty keeps the endpoint private."
  type        = list(string)
  default     = []
}

variable "eks_admin_principal_arns" {
  description = "IAM roles or users given cluster administration (who runs helm)."
  type        = list(string)
  default     = []
}

variable "node_instance_type" {
  description = "EC2 instance type of the EKS nodes."
  type        = string
  default     = "t3.large"
}

variable "node_min_size" {
  description = "EKS nodes at least."
  type        = number
  default     = 2
  validation {
    condition     = var.node_min_size >= 2
    error_message = "Two nodes at least, so a node can be replaced without downtime."
  }
}

variable "node_max_size" {
  description = "EKS nodes at most."
  type        = number
  default     = 3
}

variable "postgres_version" {
  description = "RDS PostgreSQL engine version (17.x)."
  type        = string
  default     = "17"
}

variable "rds_instance_class" {
  description = "RDS instance class (Multi-AZ doubles its price)."
  type        = string
  default     = "db.t4g.medium"
}

variable "zone_name" {
  description = "Public Route53 hosted zone holding the platform's domain."
  type        = string
}

variable "domain_name" {
  description = "The platform's domain, in zone_name (e.g. app.example.com)."
  type        = string
}

variable "helm_namespace" {
  description = "Namespace the Helm release is installed in (its service account gets the secrets role)."
  type        = string
  default     = "dev"
}

variable "helm_release" {
  description = "Name of the Helm release."
  type        = string
  default     = "platform"
}

variable "log_retention_days" {
  description = "Days logs are kept (flow logs, control plane, WAF, access logs)."
  type        = number
  default     = 365
  validation {
    condition     = var.log_retention_days >= 365
    error_message = "Keep logs a year at least."
  }
}

variable "backup_retention_days" {
  description = "Days database dumps are kept in the backups bucket."
  type        = number
  default     = 90
}

variable "alarm_emails" {
  description = "Addresses CloudWatch alarms are mailed to."
  type        = list(string)
  default     = []
}
