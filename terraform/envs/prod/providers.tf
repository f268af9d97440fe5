# Credentials come from the environment (an SSO profile or a CI role through
# OIDC), never from a file here.
provider "aws" {
  region = var.region
  default_tags {
    tags = {
      Project     = "gatehouse"
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}
