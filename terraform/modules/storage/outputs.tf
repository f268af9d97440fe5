output "logs_bucket_name" {
  description = "Bucket of the ALB's (and S3's) access logs."
  value       = module.logs.name
}

output "backups_bucket_name" {
  description = "Bucket for database dumps."
  value       = module.backups.name
}

output "ecr_registry" {
  description = "The registry the images are pushed to."
  value       = "${data.aws_caller_identity.current.account_id}.dkr.ecr.${data.aws_region.current.region}.amazonaws.com"
}

output "repository_urls" {
  description = "Image repositories by image (host, proxy)."
  value       = { for k, r in aws_ecr_repository.this : k => r.repository_url }
}
