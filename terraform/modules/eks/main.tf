# EKS: the control plane (secrets encrypted with our KMS key, every log
# type to CloudWatch, a private endpoint and optionally a public one
# restricted by CIDR), a managed node group in the private subnets, the
# OIDC provider for IAM roles for service accounts, and the role of the AWS
# Load Balancer Controller.

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

module "kms" {
  source      = "../kms"
  alias       = "${var.name}-eks-secrets"
  description = "${var.name}: Kubernetes Secrets envelope encryption"
}

resource "aws_cloudwatch_log_group" "cluster" {
  # The name EKS writes its control-plane logs to.
  name              = "/aws/eks/${var.name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

module "cluster_role" {
  source           = "../iam-role"
  name             = "${var.name}-cluster"
  service          = "eks.amazonaws.com"
  service_actions  = ["sts:AssumeRole", "sts:TagSession"]
  managed_policies = ["AmazonEKSClusterPolicy"]
}

resource "aws_eks_cluster" "this" {
  name     = var.name
  version  = var.kubernetes_version
  role_arn = module.cluster_role.arn

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  access_config {
    authentication_mode = "API"
  }

  vpc_config {
    subnet_ids              = var.private_subnet_ids
    endpoint_private_access = true
    endpoint_public_access  = length(var.public_access_cidrs) > 0
    public_access_cidrs     = length(var.public_access_cidrs) > 0 ? var.public_access_cidrs : null
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = module.kms.arn
    }
  }

  # The log group first, so EKS does not make one without retention or key.
  depends_on = [aws_cloudwatch_log_group.cluster]
}

# Who administers the cluster (kubectl, helm): IAM principals given here.
resource "aws_eks_access_entry" "admin" {
  for_each      = toset(var.admin_principal_arns)
  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
}

resource "aws_eks_access_policy_association" "admin" {
  for_each      = toset(var.admin_principal_arns)
  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
  policy_arn    = "arn:${data.aws_partition.current.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
  access_scope {
    type = "cluster"
  }
  depends_on = [aws_eks_access_entry.admin]
}

# --- nodes -----------------------------------------------------------------

module "node_role" {
  source           = "../iam-role"
  name             = "${var.name}-node"
  service          = "ec2.amazonaws.com"
  managed_policies = ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"]
}

resource "aws_launch_template" "node" {
  name_prefix = "${var.name}-node-"
  # IMDSv2 only, and out of reach of pods (one hop).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size = var.node_disk_gib
      volume_type = "gp3"
      encrypted   = true
    }
  }
}

resource "aws_eks_node_group" "default" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "default"
  node_role_arn   = module.node_role.arn
  subnet_ids      = var.private_subnet_ids
  instance_types  = [var.node_instance_type]
  ami_type        = "AL2023_x86_64_STANDARD"

  scaling_config {
    min_size     = var.node_min_size
    desired_size = var.node_min_size
    max_size     = var.node_max_size
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }
}

resource "aws_eks_addon" "this" {
  for_each     = toset(["vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent"])
  cluster_name = aws_eks_cluster.this.name
  addon_name   = each.value
  depends_on   = [aws_eks_node_group.default]
}

# --- IAM roles for service accounts (IRSA) ---------------------------------

data "tls_certificate" "oidc" {
  url = aws_eks_cluster.this.identity[0].oidc[0].issuer
}

resource "aws_iam_openid_connect_provider" "this" {
  url             = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = [data.tls_certificate.oidc.certificates[0].sha1_fingerprint]
}

locals {
  oidc_host = replace(aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://", "")
}

# The AWS Load Balancer Controller registers the proxy pods in the ALB's
# target group (TargetGroupBinding) and opens the pods' security group to
# the ALB: this is all it may do.
module "lb_controller_role" {
  source = "../iam-role"
  name   = "${var.name}-aws-load-balancer-controller"
  service_account = {
    oidc_provider_arn  = aws_iam_openid_connect_provider.this.arn
    oidc_provider_host = local.oidc_host
    namespace          = "kube-system"
    name               = "aws-load-balancer-controller"
  }
  inline_policy = {
    name = "target-group-binding"
    json = data.aws_iam_policy_document.lb_controller.json
  }
}

data "aws_iam_policy_document" "lb_controller" {
  statement {
    sid = "Describe"
    actions = [
      "ec2:DescribeAvailabilityZones",
      "ec2:DescribeInstances",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSubnets",
      "ec2:DescribeVpcs",
      "elasticloadbalancing:DescribeListeners",
      "elasticloadbalancing:DescribeLoadBalancers",
      "elasticloadbalancing:DescribeTags",
      "elasticloadbalancing:DescribeTargetGroups",
      "elasticloadbalancing:DescribeTargetHealth",
    ]
    resources = ["*"]
  }
  statement {
    sid       = "Targets"
    actions   = ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]
    resources = var.target_group_arns
  }
  statement {
    sid       = "PodSecurityGroup"
    actions   = ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"]
    resources = ["arn:${data.aws_partition.current.partition}:ec2:*:${data.aws_caller_identity.current.account_id}:security-group/${aws_eks_cluster.this.vpc_config[0].cluster_security_group_id}"]
  }
}
