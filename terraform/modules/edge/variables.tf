variable "name" {
  description = "Name of the ALB, prefixed to its parts (32 characters at most)."
  type        = string
  validation {
    condition     = length(var.name) <= 26
    error_message = "name must leave room for the target group's \"-proxy\" suffix (26 characters at most)."
  }
}

variable "zone_name" {
  description = "The public Route53 hosted zone holding the domain (e.g. example.com)."
  type        = string
}

variable "domain_name" {
  description = "The platform's domain (e.g. app.example.com), in zone_name."
  type        = string
}

variable "vpc_id" {
  description = "The VPC."
  type        = string
}

variable "vpc_cidr_block" {
  description = "The VPC's range: where the proxy pods are."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets for the ALB."
  type        = list(string)
}

variable "proxy_port" {
  description = "The proxy pods' traffic port."
  type        = number
}

variable "proxy_admin_port" {
  description = "The proxy pods' admin port (/readyz for health checks)."
  type        = number
}

variable "logs_bucket_name" {
  description = "S3 bucket for the ALB's access logs."
  type        = string
}

variable "log_retention_days" {
  description = "Days the WAF logs are kept."
  type        = number
}

variable "logs_kms_key_arn" {
  description = "KMS key encrypting the WAF log group."
  type        = string
}
