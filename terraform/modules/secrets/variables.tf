variable "name" {
  description = "Prefix of the secret's name (e.g. gatehouse/prod)."
  type        = string
}

variable "oidc_provider_arn" {
  description = "The EKS cluster's OIDC provider."
  type        = string
}

variable "oidc_provider_host" {
  description = "The OIDC issuer without its scheme."
  type        = string
}

variable "namespace" {
  description = "Namespace of the Helm release."
  type        = string
}

variable "service_account" {
  description = "The chart's service account for the External Secrets Operator (<release>-secrets)."
  type        = string
}

variable "database_secret_arn" {
  description = "The RDS-managed master secret."
  type        = string
}

variable "database_kms_key_arn" {
  description = "The key encrypting the RDS-managed secret."
  type        = string
}
