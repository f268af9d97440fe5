variable "alias" {
  description = "The key's alias, without the \"alias/\" prefix (e.g. gatehouse-prod-rds)."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9/_-]{1,250}$", var.alias)) && !startswith(var.alias, "aws/")
    error_message = "alias is letters, digits, \"/\", \"_\" and \"-\" (250 at most), and does not start with the reserved \"aws/\"."
  }
}

variable "description" {
  description = "What the key encrypts (shown in the KMS console)."
  type        = string
  validation {
    condition     = length(var.description) > 0 && length(var.description) <= 8192
    error_message = "description is required (8192 characters at most)."
  }
}

variable "service_principals" {
  description = <<-EOT
    AWS services the key policy lets use the key directly, one statement each:
    sid (the statement's id), service (its principal, e.g. logs.eu-west-3.amazonaws.com),
    actions (cryptographic ones only: the key is administered by the account alone) and
    conditions narrowing the use (test, variable, values). Empty: only the account's IAM
    principals, with their own IAM permissions, may use the key.
  EOT
  type = list(object({
    sid     = string
    service = string
    actions = list(string)
    conditions = optional(list(object({
      test     = string
      variable = string
      values   = list(string)
    })), [])
  }))
  default = []
  validation {
    condition = alltrue([
      for p in var.service_principals : can(regex("^[A-Za-z0-9]+$", p.sid)) && p.sid != "AccountAdministers"
    ]) && length(distinct([for p in var.service_principals : p.sid])) == length(var.service_principals)
    error_message = "Each sid is letters and digits, unique, and not AccountAdministers."
  }
  validation {
    condition     = alltrue([for p in var.service_principals : can(regex("^[a-z0-9.-]+\\.amazonaws\\.com$", p.service))])
    error_message = "Each service is an AWS service principal (...amazonaws.com)."
  }
  validation {
    condition = alltrue(flatten([
      for p in var.service_principals : length(p.actions) > 0 ? [
        for a in p.actions : contains([
          "kms:Encrypt", "kms:Encrypt*", "kms:Decrypt", "kms:Decrypt*", "kms:ReEncrypt*", "kms:ReEncryptFrom", "kms:ReEncryptTo",
          "kms:GenerateDataKey", "kms:GenerateDataKey*", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey", "kms:Describe*",
        ], a)
      ] : [false]
    ]))
    error_message = "Each service gets at least one action, and only cryptographic ones (Encrypt, Decrypt, ReEncrypt, GenerateDataKey, Describe)."
  }
}

variable "deletion_window_in_days" {
  description = "Days a key scheduled for deletion can still be recovered."
  type        = number
  default     = 30
  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days is 7 to 30."
  }
}
