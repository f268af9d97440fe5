output "vpc_id" {
  description = "The VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "The VPC's address range."
  value       = aws_vpc.this.cidr_block
}

output "public_subnet_ids" {
  description = "Public subnets (the ALB)."
  value       = aws_subnet.public[*].id
}

output "public_subnet_cidrs" {
  description = "Public subnets' ranges: where the ALB's connections come from."
  value       = aws_subnet.public[*].cidr_block
}

output "private_subnet_ids" {
  description = "Private subnets (EKS nodes and pods)."
  value       = aws_subnet.private[*].id
}

output "database_subnet_ids" {
  description = "Database subnets (RDS)."
  value       = aws_subnet.database[*].id
}

output "database_subnet_cidrs" {
  description = "Database subnets' ranges: where pods may connect to PostgreSQL."
  value       = aws_subnet.database[*].cidr_block
}
