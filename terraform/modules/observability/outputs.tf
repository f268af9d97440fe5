output "logs_kms_key_arn" {
  description = "The key every log group is encrypted with."
  value       = module.kms.arn
}

output "alarm_topic_arn" {
  description = "Where alarms are sent."
  value       = aws_sns_topic.alarms.arn
}
