variable "name" {
  description = "The cluster's name."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version (e.g. 1.35)."
  type        = string
  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.kubernetes_version))
    error_message = "kubernetes_version is a minor version such as 1.35."
  }
}

variable "private_subnet_ids" {
  description = "Subnets of the nodes and the control plane's network interfaces."
  type        = list(string)
}

variable "public_access_cidrs" {
  description = "Networks allowed to the public API endpoint; empty keeps the endpoint private only."
  type        = list(string)
  validation {
    condition     = alltrue([for c in var.public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "public_access_cidrs must be networks, and not the whole internet."
  }
}

variable "admin_principal_arns" {
  description = "IAM users or roles given cluster administration (kubectl, helm)."
  type        = list(string)
}

variable "node_instance_type" {
  description = "EC2 instance type of the nodes."
  type        = string
}

variable "node_min_size" {
  description = "Nodes at least (and at start)."
  type        = number
}

variable "node_max_size" {
  description = "Nodes at most."
  type        = number
}

variable "node_disk_gib" {
  description = "Root volume of each node (GiB, gp3, encrypted)."
  type        = number
}

variable "target_group_arns" {
  description = "Target groups the AWS Load Balancer Controller may register pods in."
  type        = list(string)
}

variable "log_retention_days" {
  description = "Days the control-plane logs are kept."
  type        = number
}

variable "logs_kms_key_arn" {
  description = "KMS key encrypting the control-plane log group."
  type        = string
}
