variable "name" {
  description = "The role's name."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.name))
    error_message = "name is 64 characters at most, of letters, digits and +=,.@_-."
  }
}

variable "service" {
  description = "The AWS service principal that takes the role (e.g. eks.amazonaws.com); null when service_account is given."
  type        = string
  default     = null
  validation {
    condition     = var.service == null ? true : can(regex("^[a-z0-9.-]+\\.amazonaws\\.com$", var.service))
    error_message = "service is an AWS service principal (...amazonaws.com)."
  }
}

variable "service_actions" {
  description = "What the service may do with the role: sts:AssumeRole, and sts:TagSession where the service tags its sessions."
  type        = list(string)
  default     = ["sts:AssumeRole"]
  validation {
    condition     = contains(var.service_actions, "sts:AssumeRole") && alltrue([for a in var.service_actions : contains(["sts:AssumeRole", "sts:TagSession"], a)])
    error_message = "service_actions is sts:AssumeRole, with sts:TagSession at most."
  }
}

variable "service_account" {
  description = "The Kubernetes service account that takes the role through IRSA: the cluster's OIDC provider (ARN, and issuer host without its scheme), the account's namespace and name; null when service is given."
  type = object({
    oidc_provider_arn  = string
    oidc_provider_host = string
    namespace          = string
    name               = string
  })
  default = null
  validation {
    condition = var.service_account == null ? true : (
      can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.service_account.namespace)) &&
      can(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", var.service_account.name)) &&
      !startswith(var.service_account.oidc_provider_host, "https://")
    )
    error_message = "service_account names a Kubernetes namespace and service account, and the OIDC issuer without https://."
  }
}

variable "managed_policies" {
  description = "AWS managed policies attached, by name with their path below policy/ (e.g. service-role/AmazonRDSEnhancedMonitoringRole)."
  type        = list(string)
  default     = []
  validation {
    condition = alltrue([
      for p in var.managed_policies : can(regex("^([A-Za-z0-9-]+/)*[A-Za-z0-9_+=,.@-]+$", p))
      && !contains(["AdministratorAccess", "PowerUserAccess", "IAMFullAccess"], p)
    ])
    error_message = "managed_policies are AWS managed policy names, and none grants administration (AdministratorAccess, PowerUserAccess, IAMFullAccess)."
  }
}

variable "inline_policy" {
  description = "The role's own policy: its name and its JSON document; null for none."
  type = object({
    name = string
    json = string
  })
  default = null
}
