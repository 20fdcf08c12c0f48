# Deployment tooling: the Helm chart checks and a local Kubernetes API server
# for tests. Included by the root Makefile; every tool is pinned and installed
# into the git-ignored .cache/ (binaries in .cache/bin).
#
#   make deploy-tools   helm, helm-unittest (go install) + kubernetes-validate (pip) + the published
#                       Kueue and Gateway API CRDs (deploy/helm/tools/fetch_crds.py, into .cache/crds)
#   make helm-lint      lint, render, schema-validate (per Kubernetes version; Kueue and Gateway API
#                       resources against their CRDs, Strimzi's against our schemas of their API in
#                       deploy/helm/tools/crds) and unit-test the chart
#   make k8s-build      build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (cached)
#   make k8s-up         start the local API server stack; kubeconfig: run/k8s/kubeconfig
#   make k8s-down       stop it
#   make test-deploy    pytest tests/deploy (CI=true: nothing may skip)

DEPLOY_ROOT        := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST))/..)))
DEPLOY_CACHE       ?= $(DEPLOY_ROOT)/.cache
DEPLOY_BIN         := $(DEPLOY_CACHE)/bin
DEPLOY_PY          ?= $(DEPLOY_ROOT)/.venv/bin/python
DEPLOY_CHART       := $(DEPLOY_ROOT)/deploy/helm/preflight

HELM_VERSION               := v3.22.0
# Default Kubernetes version of "helm template"/"helm lint" (Helm's own release
# builds derive it from the client-go minor: v0.37 -> 1.37).
HELM_KUBE_VERSION_MAJOR    := 1
HELM_KUBE_VERSION_MINOR    := 37
# Built from deploy/helm/tools/helm-unittest/go.mod (keep in step): v1.0.1 is
# served by the module proxy but unknown to the checksum database, so it
# cannot be verified; v1.1.2 (helm v3.21 inside) can.
HELM_UNITTEST_VERSION      := v1.1.2
KUBERNETES_VALIDATE_VERSION := 1.37.0
# Kubernetes versions every rendered manifest is validated against.
DEPLOY_KUBE_VERSIONS       ?= 1.34.0 1.35.0 1.36.0 1.37.0

HELM          := $(DEPLOY_BIN)/helm
HELM_UNITTEST := $(DEPLOY_BIN)/helm-unittest

DEPLOY_GOENV := GOBIN=$(DEPLOY_BIN) GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0

HELM_LDFLAGS := -s -w \
	-X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	-X helm.sh/helm/v3/internal/version.gitTreeState=clean \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$(HELM_KUBE_VERSION_MAJOR) \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_KUBE_VERSION_MINOR) \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$(HELM_KUBE_VERSION_MAJOR) \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_KUBE_VERSION_MINOR)

.PHONY: deploy-tools helm-lint k8s-build k8s-up k8s-down test-deploy

# Stamp files make the pinned versions part of the target names, so bumping a
# version reinstalls the tool.
$(DEPLOY_CACHE)/stamps/helm-$(HELM_VERSION)-k8s$(HELM_KUBE_VERSION_MAJOR).$(HELM_KUBE_VERSION_MINOR):
	@mkdir -p $(DEPLOY_BIN) $(@D)
	$(DEPLOY_GOENV) go install -trimpath -ldflags '$(HELM_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@touch $@

$(DEPLOY_CACHE)/stamps/helm-unittest-$(HELM_UNITTEST_VERSION):
	@mkdir -p $(DEPLOY_BIN) $(@D)
	cd $(DEPLOY_ROOT)/deploy/helm/tools/helm-unittest && $(DEPLOY_GOENV) go build -trimpath -ldflags '-s -w' \
		-o $(HELM_UNITTEST) github.com/helm-unittest/helm-unittest/cmd/helm-unittest
	@touch $@

$(DEPLOY_CACHE)/stamps/kubernetes-validate-$(KUBERNETES_VALIDATE_VERSION):
	@mkdir -p $(@D)
	$(DEPLOY_PY) -m pip install --quiet 'kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)'
	@touch $@

# Re-fetched whenever fetch_crds.py (which pins the modules' versions and hashes) changes.
$(DEPLOY_CACHE)/crds/.fetched: $(DEPLOY_ROOT)/deploy/helm/tools/fetch_crds.py
	$(DEPLOY_PY) $(DEPLOY_ROOT)/deploy/helm/tools/fetch_crds.py --out $(@D)
	@touch $@

deploy-tools: \
	$(DEPLOY_CACHE)/stamps/helm-$(HELM_VERSION)-k8s$(HELM_KUBE_VERSION_MAJOR).$(HELM_KUBE_VERSION_MINOR) \
	$(DEPLOY_CACHE)/stamps/helm-unittest-$(HELM_UNITTEST_VERSION) \
	$(DEPLOY_CACHE)/stamps/kubernetes-validate-$(KUBERNETES_VALIDATE_VERSION) \
	$(DEPLOY_CACHE)/crds/.fetched

helm-lint: deploy-tools
	$(HELM) lint --strict $(DEPLOY_CHART) -f $(DEPLOY_ROOT)/deploy/helm/tools/required-values.yaml
	$(HELM) lint --strict $(DEPLOY_CHART) -f $(DEPLOY_CHART)/examples/minimal.yaml
	$(HELM) lint --strict $(DEPLOY_CHART) -f $(DEPLOY_CHART)/examples/production.yaml
	$(HELM) lint --strict $(DEPLOY_CHART) -f $(DEPLOY_CHART)/examples/strimzi.yaml
	$(DEPLOY_PY) $(DEPLOY_ROOT)/deploy/helm/tools/check_chart.py --helm $(HELM) \
		--kube-versions '$(DEPLOY_KUBE_VERSIONS)' $(DEPLOY_CHART)
	$(HELM_UNITTEST) --strict --color=false $(DEPLOY_CHART)

k8s-build:
	$(DEPLOY_ROOT)/deploy/k8s/build.sh all

k8s-up: k8s-build
	$(DEPLOY_PY) $(DEPLOY_ROOT)/deploy/k8s/cluster.py up

k8s-down:
	$(DEPLOY_PY) $(DEPLOY_ROOT)/deploy/k8s/cluster.py down

test-deploy: deploy-tools k8s-build
	$(DEPLOY_PY) -m pytest $(DEPLOY_ROOT)/tests/deploy -q
