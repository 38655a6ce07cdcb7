# encwatch build, test and packaging. Run `make help` for the targets.
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/encwatch

.PHONY: help build run test test-deps test-abuse vet lint bench bench-fleet fuzz clean

help:
	@echo "make build      build $(BIN)"
	@echo "make run        build and start the daemon with ./config.hcl (root)"
	@echo "make test       install test dependencies, lint, and run every test (root: kernel tests)"
	@echo "make lint       go vet, staticcheck and deadcode"
	@echo "make test-abuse the abuse suite alone: attacks as nobody on the built daemon (root, kernel audit)"
	@echo "make bench      parser, assembler, engine and replay (50 MB log: plain, gzip, go-libaudit) benchmarks"
	@echo "make bench-fleet  alerts/s: agent to NATS JetStream, syslog TCP beside it, stream through a collector"
	@echo "make fuzz       run each fuzz target for FUZZTIME (default 30s)"
	@echo "make deb|rpm    build the packages into dist/ (nfpm)"
	@echo "make package-test  build both packages, install/remove the .deb, query the .rpm (root)"
	@echo "make bench-e2e  exec-storm benchmark: encwatch beside auditd on the real kernel (root)"
	@echo "make soak       10-minute storm with reloads and a flapping sink (root)"

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/encwatch

# The daemon refuses a policy that is not root-owned or is group/world
# writable, and checks every directory up to / like sshd's StrictModes: a
# checkout in a user's home would fail that. So run starts from a root-owned
# copy of the repo's config.hcl in a fresh directory under /run (root's).
RUNDIR  ?= /run/encwatch-make-run
run: build
	install -d -o root -g root -m 0700 $(RUNDIR)
	install -o root -g root -m 0600 config.hcl $(RUNDIR)/config.hcl
	./$(BIN) run --config $(RUNDIR)/config.hcl

# The fleet test (cmd/encwatch) runs after the rest, alone: it reports the
# fleet's throughput, which the abuse suite's daemons would share on a
# small machine, and it has a 4-minute budget of its own.
FLEET_TEST = ^TestFleetThroughJetStreamClusterAsRoot$$
test: test-deps lint
	$(GO) test -count=1 -timeout 8m -skip '$(FLEET_TEST)' ./...
	$(GO) test -count=1 -timeout 4m -run '$(FLEET_TEST)' ./cmd/encwatch/

# The abuse suite (internal/abuse, also part of `make test`): builds the
# daemon, runs it on the live kernel with the shipped unit's /tmp and
# capabilities, and attacks it as nobody. ENCWATCH_ABUSE_BIN=path runs it
# against another build (to see a test fail on old code).
test-abuse:
	$(GO) test -count=1 -timeout 5m -v ./internal/abuse/

# Debian packages the tests need. Installing never starts their services:
# this machine's /usr/sbin/policy-rc.d forbids it, and we keep it that way.
TEST_PKGS := rsyslog rsyslog-gnutls rpm systemd busybox nats-server curl xxd prometheus chromium
test-deps:
	@missing=""; for p in $(TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing test dependencies:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

vet:
	$(GO) vet ./...

# go vet, staticcheck and deadcode (tests count as callers), at pinned
# versions from the module proxy so that they stay out of go.mod.
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEADCODE    := $(GO) run golang.org/x/tools/cmd/deadcode@v0.52.0
lint: vet
	$(STATICCHECK) ./...
	@out=$$($(DEADCODE) -test ./...); if [ -n "$$out" ]; then echo "$$out"; echo "deadcode: unreachable functions"; exit 1; fi

# bench also runs the replay benchmark (a ~50 MB auditd log replayed plain
# and gzip'd, side by side with go-libaudit reading the same plain bytes) and
# BenchmarkPipelineBatch (parse, assemble and detect a
# recorded batch) and fails when its allocs/event rise above the figure
# committed in bench/allocs-per-event.
ALLOC_BUDGET := bench/allocs-per-event
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./audit/... ./detect/ ./internal/sink/
	@out=$$($(GO) test -run '^$$' -bench '^BenchmarkPipelineBatch$$' -benchmem ./internal/daemon/) || { echo "$$out"; exit 1; }; \
	echo "$$out"; \
	got=$$(echo "$$out" | awk '{ for (i = 2; i <= NF; i++) if ($$i == "allocs/event") print $$(i-1) }'); \
	max=$$(grep -v '^#' $(ALLOC_BUDGET)); \
	awk -v g="$$got" -v m="$$max" 'BEGIN { if (g == "" || g + 0 > m + 0) { printf "allocs/event %s above the committed %s ($(ALLOC_BUDGET))\n", g, m; exit 1 } \
		printf "allocs/event %s within the committed %s ($(ALLOC_BUDGET))\n", g, m }'
	$(GO) test -run '^$$' -bench BenchmarkReplayLog -benchtime 3x -benchmem ./internal/daemon/

# The fleet's figures in docs/performance.md ("The fleet: NATS JetStream"):
# one agent to a JetStream stream, the syslog TCP sink beside it, and the
# stream through one collector, in one run (needs nats-server).
bench-fleet: test-deps
	$(GO) test -run '^$$' -bench BenchmarkFleet -benchtime 20000x ./internal/fleet/

FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf bin dist

# ---------------------------------------------------------------------------
# Packages (nfpm, run from the module proxy at a pinned version so that it
# stays out of go.mod). VERSION becomes a package version dpkg and rpm both
# accept: a leading "v" dropped, "-" turned into ".", and an untagged commit
# written 0.0.0+git.HASH.
NFPM        := $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DIST        ?= dist
PKG_VERSION ?= $(shell echo '$(VERSION)' | sed -E 's/^v([0-9]+\.)/\1/; /^[0-9]+\.[0-9]/!s/^/0.0.0+git./; s/-/./g')
PKG_ARCH    ?= $(shell $(GO) env GOARCH)

.PHONY: deb rpm packages package-files package-test

package-files: build
	gzip -9 -n -c packaging/encwatch.8 > bin/encwatch.8.gz

deb rpm: package-files
	@mkdir -p $(DIST)
	@if [ $@ = deb ]; then rm -f $(DIST)/encwatch_*.deb; else rm -f $(DIST)/encwatch-*.rpm; fi
	PKG_VERSION='$(PKG_VERSION)' GOARCH='$(PKG_ARCH)' $(NFPM) pkg --packager $@ --config packaging/nfpm.yaml --target $(DIST)/

packages: deb rpm

# Installs the .deb on this machine with dpkg, checks it, and purges it
# again (root); queries the .rpm with rpm. `make test` runs the same test,
# building the packages itself.
package-test: test-deps packages
	ENCWATCH_DIST=$(abspath $(DIST)) $(GO) test -count=1 -v ./packaging/

# ---------------------------------------------------------------------------
# Exec-storm benchmark and soak (bench/storm): root, the real kernel audit,
# not part of `make test`. bench-e2e measures encwatch beside Debian's auditd
# (installed here if missing; policy-rc.d keeps it from starting as a
# service) and rewrites its section of docs/performance.md. The storm tool
# compiles its load generator (bench/storm/spawner/spawner.c) with gcc; for
# each workload (a host's mix of dynamic programs, shells, a pipeline and a
# script; dynamic /bin/true; the static true) it runs 1000/s and flat out,
# each daemon twice per point, interleaved, and prints the encwatch/auditd
# ratio table with the kernel's syscall and context-switch counts. Each
# measured run takes the kernel-test lock and restores the audit state it
# found.
STORM_DURATION  ?= 20s
STORM_RATES     ?= 1000,max
STORM_WORKLOADS ?= mix,true,static
DURATION       ?= 10m
SOAK_RELOAD    ?= both

.PHONY: bench-e2e soak

bench-e2e: build
	@dpkg -s auditd >/dev/null 2>&1 || { echo "installing auditd"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends auditd; }
	$(GO) build -o bin/storm ./bench/storm
	./bin/storm bench -bin $(BIN) -config config.hcl -duration $(STORM_DURATION) -rates $(STORM_RATES) -workloads $(STORM_WORKLOADS) -out docs/performance.md

soak: build
	$(GO) build -o bin/storm ./bench/storm
	./bin/storm soak -bin $(BIN) -config config.hcl -duration $(DURATION) -reload $(SOAK_RELOAD) -out docs/performance.md
