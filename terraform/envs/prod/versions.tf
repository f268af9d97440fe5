terraform {
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }

  # State in S3, locked in DynamoDB. The bucket, table and key are given at
  # `terraform init -backend-config=backend.hcl` (see backend.hcl.example and
  # terraform/README.md), so no account's names are written here.
  backend "s3" {
    encrypt = true
  }
}
