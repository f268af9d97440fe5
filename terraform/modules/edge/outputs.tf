output "target_group_arn" {
  description = "The target group the proxy pods join."
  value       = aws_lb_target_group.proxy.arn
}

output "security_group_id" {
  description = "The ALB's security group (the pods accept traffic from it)."
  value       = aws_security_group.alb.id
}

output "certificate_arn" {
  description = "The validated certificate."
  value       = aws_acm_certificate_validation.this.certificate_arn
}

output "alb_arn_suffix" {
  description = "The ALB's ARN suffix (for CloudWatch metrics)."
  value       = aws_lb.this.arn_suffix
}

output "target_group_arn_suffix" {
  description = "The target group's ARN suffix (for CloudWatch metrics)."
  value       = aws_lb_target_group.proxy.arn_suffix
}

output "url" {
  description = "The platform's public URL."
  value       = "https://${var.domain_name}"
}
