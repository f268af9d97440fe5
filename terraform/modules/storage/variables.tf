variable "name" {
  description = "Prefix of the buckets' and repositories' names (lower case)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be lower case letters, digits and dashes."
  }
}

variable "log_retention_days" {
  description = "Days access logs are kept."
  type        = number
}

variable "backup_retention_days" {
  description = "Days database dumps are kept."
  type        = number
}

variable "repository_prefix" {
  description = "Prefix of the image repositories: <prefix>/host and <prefix>/proxy, as the chart's image.*.repository name them."
  type        = string
}
