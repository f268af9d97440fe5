output "cluster_name" {
  description = "The cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_security_group_id" {
  description = "The security group of the nodes and pods (EKS's cluster security group)."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "oidc_provider_arn" {
  description = "The cluster's OIDC provider, for IAM roles for service accounts."
  value       = aws_iam_openid_connect_provider.this.arn
}

output "oidc_provider_host" {
  description = "The OIDC issuer without its scheme, as IAM conditions name it."
  value       = local.oidc_host
}

output "lb_controller_role_arn" {
  description = "Role of the AWS Load Balancer Controller's service account (kube-system/aws-load-balancer-controller)."
  value       = module.lb_controller_role.arn
}
