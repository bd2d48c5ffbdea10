# vmhost_exporter — the two commands an operator needs are `make run` and
# `make test`; everything else is for developers.

GO          ?= go
BIN         ?= vmhost_exporter
STATICCHECK_VERSION ?= v0.8.2
GOBIN       := $(shell $(GO) env GOPATH 2>/dev/null)/bin
export PATH := $(PATH):/usr/local/go/bin:$(GOBIN)
export CGO_ENABLED := 0

VERSION  ?= $(shell cat VERSION 2>/dev/null)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null)
BRANCH   ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
PKG_VERSION := github.com/prometheus/common/version
# Who built it: $USER, which CI runners and containers may leave unset or
# empty, else the name of the user id.
BUILD_USER ?= $(or $(USER),$(shell id -un))@$(shell hostname)
LDFLAGS  := -s -w -X $(PKG_VERSION).Version=$(VERSION) -X $(PKG_VERSION).Revision=$(REVISION) \
            -X $(PKG_VERSION).Branch=$(BRANCH) -X $(PKG_VERSION).BuildUser=$(BUILD_USER) \
            -X $(PKG_VERSION).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)

# Extra flags for `make run`, e.g. make run ARGS='--libvirt.uri=qemu:///system'.
ARGS ?=

.PHONY: all build run test test-deps lint fuzz bench soak dashboards demo clean package promtool3

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/vmhost_exporter

run: build
	./$(BIN) $(ARGS)

test-deps:
	./scripts/install-test-deps.sh

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed on: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	@command -v staticcheck >/dev/null 2>&1 || GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	staticcheck ./...

# Tests run against real libvirtd, QEMU, Prometheus, VictoriaMetrics and
# rclone; test-deps installs them (as root) when missing. The rule tests also
# run on Prometheus 3's promtool (promtool3).
test: test-deps lint promtool3
	VMHOST_PROMTOOL3=$(PROMTOOL3) $(GO) test -count=1 -timeout 30m ./...
	$(MAKE) fuzz

# Every parser's fuzz target for FUZZTIME each (go test -fuzz takes one
# target per run); a target's output is shown only when it fails. The
# budget is a count of executions, not a duration: with a duration, Go
# before 1.27 can fail a target with a bare "context deadline exceeded" when
# the deadline races a busy worker (golang/go#75804), which a loaded 2-core
# CI machine hits now and then. 20,000 executions take 1 to 15 s a target.
FUZZTIME ?= 20000x
FUZZ_TARGETS := \
	./collector/backup:FuzzConfig ./collector/backup:FuzzRcloneLog ./collector/backup:FuzzRestoreLog \
	./collector/backup:FuzzStepLog ./collector/backup:FuzzVzdumpNames \
	./collector/libvirt:FuzzDomainXML ./collector/libvirt:FuzzSnapshotXML
fuzz:
	@set -e; out=$$(mktemp); trap 'rm -f "$$out"' EXIT; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t##*:}; \
	  if $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $$pkg >"$$out" 2>&1; then \
	    echo "fuzz $$fn ($(FUZZTIME)): ok"; \
	  else cat "$$out"; echo "fuzz $$fn: FAILED"; exit 1; fi; \
	done

# Micro-benchmarks of the hot paths, then the scenarios of REQUIREMENTS §7
# and issues 16 and 17 against their baselines (private libvirtd with test
# domains and 8 / 16 QEMU guests, a 20-minute run at 1,000 domains, a
# 1,000,000-file tree, seven days of rule input for 1,000 VMs; needs root
# and about 75 minutes). The tables are also written to
# docs/performance-latest.md.
bench: test-deps
	$(GO) test -run '^$$' -bench . -benchmem ./collector/...
	VMHOST_BENCH=1 VMHOST_BENCH_RECORD=$(CURDIR)/docs/performance-latest.md \
	  $(GO) test -count=1 -v -timeout 120m -run '^TestBenchmarkReport$$' ./bench/

clean:
	rm -rf $(BIN) $(DIST)

# Prometheus 3's promtool, built from the github.com/prometheus/prometheus
# module go.mod already requires (a tool dependency, so go.sum pins it),
# into a cache directory: the rule unit tests run on it beside Debian's.
CACHE       ?= $(CURDIR)/.cache
PROMTOOL3   := $(CACHE)/bin/promtool3
promtool3: $(PROMTOOL3)
# The module is downloaded first: on a machine whose module cache does not
# hold it yet, `go list -m` names no directory and the version stamped into
# promtool3 would be empty.
$(PROMTOOL3): go.mod go.sum
	$(GO) mod download github.com/prometheus/prometheus
	dir=$$($(GO) list -m -f '{{.Dir}}' github.com/prometheus/prometheus) && test -s "$$dir/VERSION" && \
	  $(GO) build -tags remove_all_sd -o $@ -ldflags "-X $(PKG_VERSION).Version=$$(cat "$$dir/VERSION")" github.com/prometheus/prometheus/cmd/promtool

# The .deb and .rpm (nfpm, pinned in go.mod as a tool), a release tarball in
# node_exporter's layout and SHA256SUMS, all in $(DIST). The copyright file
# (licences of the project and of every Go module linked into the binary)
# is generated from the binary's build information by
# packaging/gen-copyright; the docs are every docs/*.md and examples/*.
DIST    ?= $(CURDIR)/dist
RELEASE := vmhost_exporter-$(VERSION).linux-amd64
NFPM    := $(CACHE)/bin/nfpm
# The package scripts; the upgrade test builds an older release's
# package with its scripts from elsewhere.
PKG_SCRIPTS ?= packaging/scripts
$(NFPM): go.mod go.sum
	$(GO) build -o $@ github.com/goreleaser/nfpm/v2/cmd/nfpm
package: $(NFPM)
	rm -rf $(DIST) && mkdir -p $(DIST)/stage/pkg $(DIST)/stage/$(RELEASE)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/stage/pkg/vmhost_exporter ./cmd/vmhost_exporter
	$(GO) run ./packaging/gen-copyright -binary $(DIST)/stage/pkg/vmhost_exporter -header packaging/copyright \
	  -modcache "$$($(GO) env GOMODCACHE)" -goroot "$$($(GO) env GOROOT)" -o $(DIST)/stage/pkg/copyright
	sed 's#/usr/local/bin/vmhost_exporter#/usr/bin/vmhost_exporter#' deploy/systemd/vmhost_exporter.service >$(DIST)/stage/pkg/vmhost_exporter.service
	cp -r deploy/sysusers.d/vmhost_exporter.conf packaging/backup.yml packaging/default \
	  LICENSE README.md docs rules dashboards examples $(DIST)/stage/pkg/
	mkdir -p $(DIST)/stage/pkg/scripts && cp $(PKG_SCRIPTS)/*.sh $(DIST)/stage/pkg/scripts/
	cd $(DIST)/stage/pkg && VERSION=$(VERSION) $(NFPM) package --config $(CURDIR)/packaging/nfpm.yaml --packager deb --target $(DIST)/
	cd $(DIST)/stage/pkg && VERSION=$(VERSION) $(NFPM) package --config $(CURDIR)/packaging/nfpm.yaml --packager rpm --target $(DIST)/
	cp $(DIST)/stage/pkg/vmhost_exporter $(DIST)/stage/pkg/copyright README.md LICENSE $(DIST)/stage/$(RELEASE)/
	mkdir -p $(DIST)/stage/$(RELEASE)/rules $(DIST)/stage/$(RELEASE)/dashboards $(DIST)/stage/$(RELEASE)/docs
	cp rules/*.yml $(DIST)/stage/$(RELEASE)/rules/
	cp dashboards/*.json $(DIST)/stage/$(RELEASE)/dashboards/
	cp docs/*.md $(DIST)/stage/$(RELEASE)/docs/
	cp -r examples deploy $(DIST)/stage/$(RELEASE)/
	tar -C $(DIST)/stage -czf $(DIST)/$(RELEASE).tar.gz --owner=0 --group=0 $(RELEASE)
	rm -rf $(DIST)/stage
	cd $(DIST) && sha256sum *.deb *.rpm *.tar.gz >SHA256SUMS

# The dashboards' JSON is generated from dashboards/*.go and committed.
dashboards:
	$(GO) run ./dashboards/gen dashboards

# The whole stack on loopback with sample VMs and backups; Ctrl-C stops it.
demo:
	./scripts/demo.sh

# One hour of scrapes every second with libvirtd faults, then one hour with
# libvirtd frozen (not run by CI).
SOAK_DURATION ?= 1h
SOAK_FROZEN_DURATION ?= 1h
soak:
	SOAK_DURATION=$(SOAK_DURATION) SOAK_FROZEN_DURATION=$(SOAK_FROZEN_DURATION) $(GO) test -count=1 -v -run '^TestSoak(Frozen)?$$' -timeout 4h ./e2e/
