output "arn" {
  description = "The role's ARN, known once its policies are attached (so what uses it waits for them)."
  value       = aws_iam_role.this.arn
  depends_on  = [aws_iam_role_policy_attachment.this, aws_iam_role_policy.this]
}
