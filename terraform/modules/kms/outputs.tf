output "arn" {
  description = "The key's ARN."
  value       = aws_kms_key.this.arn
}

output "alias_name" {
  description = "The key's alias (alias/...)."
  value       = aws_kms_alias.this.name
}
