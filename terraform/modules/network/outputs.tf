output "vpc_id" {
  description = "The VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr_block" {
  description = "The VPC's address range."
  value       = aws_vpc.this.cidr_block
}

output "subnets" {
  description = "Each tier's subnets in zone order, as ids and ranges: public (the ALB; its ranges are where the ALB's connections come from), private (EKS nodes and pods), database (RDS; its ranges are where pods may connect to PostgreSQL)."
  value = {
    for tier in keys(local.tiers) : tier => {
      ids   = [for az in local.azs : aws_subnet.this["${tier}-${az}"].id]
      cidrs = [for az in local.azs : aws_subnet.this["${tier}-${az}"].cidr_block]
    }
  }
}
