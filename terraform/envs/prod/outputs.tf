# Named as the Helm chart's aws overlay consumes them
# (deploy/overlays/aws/values.yaml, terraformOutputs); a check in
# terraform/checks keeps the two in step.

output "region" {
  description = "AWS region."
  value       = var.region
}

output "cluster_name" {
  description = "The EKS cluster (aws eks update-kubeconfig --name ...)."
  value       = module.eks.cluster_name
}

output "app_url" {
  description = "The platform's public URL."
  value       = module.edge.url
}

output "ecr_registry" {
  description = "Registry the images are pushed to (the chart's image.registry)."
  value       = module.storage.ecr_registry
}

output "public_subnet_cidrs" {
  description = "Where the ALB's connections come from (the proxy's trusted proxies and NetworkPolicy)."
  value       = module.network.subnets.public.cidrs
}

output "database_subnet_cidrs" {
  description = "Where RDS is (the NetworkPolicy egress of the host, setup Job and mailer)."
  value       = module.network.subnets.database.cidrs
}

output "rds_address" {
  description = "PostgreSQL endpoint host."
  value       = module.rds.address
}

output "rds_port" {
  description = "PostgreSQL endpoint port."
  value       = module.rds.port
}

output "rds_master_secret_arn" {
  description = "The RDS-managed secret with the database credentials."
  value       = module.rds.master_secret_arn
}

output "app_secret_name" {
  description = "The platform's secret in Secrets Manager (keys and first superuser)."
  value       = module.secrets.app_secret_name
}

output "external_secrets_role_arn" {
  description = "IRSA role of the chart's secrets service account."
  value       = module.secrets.external_secrets_role_arn
}

output "alb_target_group_arn" {
  description = "Target group the proxy pods join (TargetGroupBinding)."
  value       = module.edge.target_group_arn
}

output "alb_security_group_id" {
  description = "The ALB's security group."
  value       = module.edge.security_group_id
}

output "acm_certificate_arn" {
  description = "The certificate (for the chart's Ingress mode)."
  value       = module.edge.certificate_arn
}

output "logs_bucket_name" {
  description = "Access-log bucket (for the chart's Ingress mode)."
  value       = module.storage.logs_bucket_name
}

output "lb_controller_role_arn" {
  description = "IRSA role for the AWS Load Balancer Controller's service account."
  value       = module.eks.lb_controller_role_arn
}
