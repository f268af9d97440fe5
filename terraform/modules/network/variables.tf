variable "name" {
  description = "Name given to the VPC and prefixed to its parts."
  type        = string
}

variable "cidr_block" {
  description = "The VPC's address range (a /16: public and private /20s, database /24s are carved from it)."
  type        = string
  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && endswith(var.cidr_block, "/16")
    error_message = "cidr_block must be an IPv4 /16."
  }
}

variable "availability_zones" {
  description = "Availability zones used, by name (2 or 3)."
  type        = list(string)
  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3
    error_message = "Use 2 or 3 availability zones."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper) instead of one per zone (survives a zone's loss)."
  type        = bool
}

variable "log_retention_days" {
  description = "Days the flow logs are kept."
  type        = number
}

variable "logs_kms_key_arn" {
  description = "KMS key encrypting the flow logs' log group."
  type        = string
}
