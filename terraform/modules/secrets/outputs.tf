output "app_secret_name" {
  description = "Name of the platform's secret (fill it as terraform/README.md shows)."
  value       = aws_secretsmanager_secret.app.name
}

output "external_secrets_role_arn" {
  description = "The role the External Secrets Operator takes for this platform."
  value       = module.external_secrets_role.arn
}
