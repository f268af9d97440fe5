# Production: the root module wiring the platform's modules together.

locals {
  name = "gatehouse-${var.environment}"
}

module "observability" {
  source                  = "../../modules/observability"
  name                    = local.name
  cluster_name            = module.eks.cluster_name
  oidc_provider_arn       = module.eks.oidc_provider_arn
  oidc_provider_host      = module.eks.oidc_provider_host
  rds_instance_id         = module.rds.instance_id
  alb_arn_suffix          = module.edge.alb_arn_suffix
  target_group_arn_suffix = module.edge.target_group_arn_suffix
  alarm_emails            = var.alarm_emails
}

module "network" {
  source             = "../../modules/network"
  name               = local.name
  cidr_block         = var.vpc_cidr_block
  availability_zones = var.availability_zones
  single_nat_gateway = var.single_nat_gateway
  log_retention_days = var.log_retention_days
  logs_kms_key_arn   = module.observability.logs_kms_key_arn
}

module "storage" {
  source                = "../../modules/storage"
  name                  = local.name
  repository_prefix     = "gatehouse"
  log_retention_days    = var.log_retention_days
  backup_retention_days = var.backup_retention_days
}

module "eks" {
  source               = "../../modules/eks"
  name                 = local.name
  kubernetes_version   = var.kubernetes_version
  private_subnet_ids   = module.network.subnets.private.ids
  public_access_cidrs  = var.eks_public_access_cidrs
  admin_principal_arns = var.eks_admin_principal_arns
  node_instance_type   = var.node_instance_type
  node_min_size        = var.node_min_size
  node_max_size        = var.node_max_size
  node_disk_gib        = 50
  target_group_arns    = [module.edge.target_group_arn]
  log_retention_days   = var.log_retention_days
  logs_kms_key_arn     = module.observability.logs_kms_key_arn
}

module "rds" {
  source                    = "../../modules/rds"
  name                      = local.name
  vpc_id                    = module.network.vpc_id
  subnet_ids                = module.network.subnets.database.ids
  client_security_group_id  = module.eks.cluster_security_group_id
  engine_version            = var.postgres_version
  instance_class            = var.rds_instance_class
  database_name             = "gatehouse"
  master_username           = "gatehouse"
  allocated_storage_gib     = 20
  max_allocated_storage_gib = 100
  backup_retention_days     = 7
}

module "edge" {
  source             = "../../modules/edge"
  name               = local.name
  zone_name          = var.zone_name
  domain_name        = var.domain_name
  vpc_id             = module.network.vpc_id
  vpc_cidr_block     = module.network.vpc_cidr_block
  public_subnet_ids  = module.network.subnets.public.ids
  proxy_port         = 8080
  proxy_admin_port   = 9091
  logs_bucket_name   = module.storage.logs_bucket_name
  log_retention_days = var.log_retention_days
  logs_kms_key_arn   = module.observability.logs_kms_key_arn
}

module "secrets" {
  source               = "../../modules/secrets"
  name                 = "gatehouse/${var.environment}"
  oidc_provider_arn    = module.eks.oidc_provider_arn
  oidc_provider_host   = module.eks.oidc_provider_host
  namespace            = var.helm_namespace
  service_account      = "${var.helm_release}-secrets"
  database_secret_arn  = module.rds.master_secret_arn
  database_kms_key_arn = module.rds.kms_key_arn
}
