variable "name" {
  description = "The bucket's name."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for default encryption; null for S3-managed keys (what ALB access logs require)."
  type        = string
}

variable "expiration_days" {
  description = "Days after which objects expire."
  type        = number
}

variable "access_log_bucket" {
  description = "Bucket receiving this bucket's access logs; null logs to itself (the logs bucket)."
  type        = string
}

variable "extra_policy_json" {
  description = "Statements added to the bucket policy (who may write logs)."
  type        = string
}
