output "logs_kms_key_arn" {
  description = "The key every log group is encrypted with."
  value       = aws_kms_key.logs.arn
}

output "alarm_topic_arn" {
  description = "Where alarms are sent."
  value       = aws_sns_topic.alarms.arn
}
