output "address" {
  description = "The endpoint's host name."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "The endpoint's port."
  value       = aws_db_instance.this.port
}

output "instance_id" {
  description = "The instance's identifier (for alarms)."
  value       = aws_db_instance.this.identifier
}

output "master_secret_arn" {
  description = "The RDS-managed secret with the master user's name and password."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "kms_key_arn" {
  description = "The key encrypting the instance and its master secret."
  value       = module.kms.arn
}
