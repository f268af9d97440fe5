variable "name" {
  description = "Identifier of the instance, prefixed to its parts."
  type        = string
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "subnet_ids" {
  description = "Database subnets (one per zone, no route to the internet)."
  type        = list(string)
}

variable "client_security_group_id" {
  description = "The only security group allowed to connect (EKS's cluster security group)."
  type        = string
}

variable "engine_version" {
  description = "PostgreSQL version (major 17)."
  type        = string
  validation {
    condition     = can(regex("^17(\\.[0-9]+)?$", var.engine_version))
    error_message = "engine_version must be PostgreSQL 17."
  }
}

variable "instance_class" {
  description = "RDS instance class."
  type        = string
}

variable "database_name" {
  description = "The database the platform uses."
  type        = string
}

variable "master_username" {
  description = "The master user; its password is managed by RDS in Secrets Manager."
  type        = string
}

variable "allocated_storage_gib" {
  description = "Storage at creation (GiB)."
  type        = number
}

variable "max_allocated_storage_gib" {
  description = "Storage autoscaling ceiling (GiB)."
  type        = number
}

variable "backup_retention_days" {
  description = "Days automated backups are kept."
  type        = number
  validation {
    condition     = var.backup_retention_days >= 7
    error_message = "Keep at least seven days of backups."
  }
}
