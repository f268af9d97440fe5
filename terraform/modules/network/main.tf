# A VPC over two or three availability zones, in three tiers with a subnet
# in every zone: public (the ALB, NAT gateways), private (EKS nodes and
# pods) and database (RDS, no route to the internet). Every flow is logged
# to CloudWatch.

locals {
  azs = var.availability_zones

  # Each tier's share of the /16 (/20s for public and private, /24s for
  # databases, numbered from netnum), its way out (the internet gateway, a
  # NAT gateway, or none: the VPC's local route only), and the load
  # balancers Kubernetes may put in it.
  tiers = {
    public   = { newbits = 4, netnum = 0, route = "internet", elb_role = "elb" }
    private  = { newbits = 4, netnum = 4, route = "nat", elb_role = "internal-elb" }
    database = { newbits = 8, netnum = 96, route = "none", elb_role = null }
  }

  # One subnet, and its own route table, per tier and zone, e.g. "private-eu-west-3a".
  subnets = merge([
    for tier, t in local.tiers : {
      for i, az in local.azs : "${tier}-${az}" => {
        tier     = tier
        az       = az
        cidr     = cidrsubnet(var.cidr_block, t.newbits, t.netnum + i)
        route    = t.route
        elb_role = t.elb_role
      }
    }
  ]...)

  # NAT gateways: in the first zone only, or in each.
  nat_azs = var.single_nat_gateway ? [local.azs[0]] : local.azs
}

resource "aws_vpc" "this" {
  cidr_block           = var.cidr_block
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = { Name = var.name }
}

# The default security group allows nothing.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = var.name }
}

resource "aws_subnet" "this" {
  for_each          = local.subnets
  vpc_id            = aws_vpc.this.id
  availability_zone = each.value.az
  cidr_block        = each.value.cidr
  tags = merge(
    { Name = "${var.name}-${each.key}" },
    each.value.elb_role == null ? {} : { "kubernetes.io/role/${each.value.elb_role}" = "1" },
  )
}

resource "aws_eip" "nat" {
  for_each = toset(local.nat_azs)
  domain   = "vpc"
  tags     = { Name = "${var.name}-nat-${each.key}" }
}

resource "aws_nat_gateway" "this" {
  for_each      = toset(local.nat_azs)
  allocation_id = aws_eip.nat[each.key].id
  subnet_id     = aws_subnet.this["public-${each.key}"].id
  tags          = { Name = "${var.name}-${each.key}" }
  depends_on    = [aws_internet_gateway.this]
}

resource "aws_route_table" "this" {
  for_each = local.subnets
  vpc_id   = aws_vpc.this.id

  dynamic "route" {
    for_each = each.value.route == "none" ? [] : [each.value.route]
    content {
      cidr_block     = "0.0.0.0/0"
      gateway_id     = route.value == "internet" ? aws_internet_gateway.this.id : null
      nat_gateway_id = route.value == "nat" ? aws_nat_gateway.this[var.single_nat_gateway ? local.azs[0] : each.value.az].id : null
    }
  }

  tags = { Name = "${var.name}-${each.key}" }
}

resource "aws_route_table_association" "this" {
  for_each       = aws_subnet.this
  subnet_id      = each.value.id
  route_table_id = aws_route_table.this[each.key].id
}

# --- flow logs -------------------------------------------------------------

resource "aws_cloudwatch_log_group" "flow_logs" {
  name              = "/aws/vpc/${var.name}/flow-logs"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

data "aws_iam_policy_document" "flow_logs" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow_logs.arn}:*"]
  }
}

module "flow_logs_role" {
  source  = "../iam-role"
  name    = "${var.name}-flow-logs"
  service = "vpc-flow-logs.amazonaws.com"
  inline_policy = {
    name = "write-flow-logs"
    json = data.aws_iam_policy_document.flow_logs.json
  }
}

resource "aws_flow_log" "this" {
  vpc_id          = aws_vpc.this.id
  traffic_type    = "ALL"
  log_destination = aws_cloudwatch_log_group.flow_logs.arn
  iam_role_arn    = module.flow_logs_role.arn
}
