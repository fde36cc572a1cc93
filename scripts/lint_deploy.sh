#!/usr/bin/env bash
# Check veil's deployment files with the tools AWS, Docker and Prometheus users would:
# cfn-lint on the CloudFormation templates, hadolint on the Dockerfile, promtool on the
# Prometheus configuration and alert rules, including the rules' unit tests.
# Needs scripts/deploy_tools.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

.cache/deploy-venv/bin/cfn-lint deploy/cloudformation/*.yaml
.cache/deploy-venv/bin/hadolint Dockerfile
.cache/promtool/promtool check config --lint=all deploy/prometheus/prometheus.yml >/dev/null
.cache/promtool/promtool test rules deploy/prometheus/alerts_test.yaml >/dev/null
echo "deploy lint clean: cfn-lint (deploy/cloudformation), hadolint (Dockerfile), promtool (rules and their tests)"
