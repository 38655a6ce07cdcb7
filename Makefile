# encwatch build, test and packaging. Run `make help` for the targets.
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/encwatch
RUNDIR  := bin/run

.PHONY: help build run test test-deps vet bench fuzz clean

help:
	@echo "make build      build $(BIN)"
	@echo "make run        build and start the daemon with ./config.hcl (root)"
	@echo "make test       install test dependencies, vet, and run every test (root: kernel tests)"
	@echo "make bench      parser, assembler and engine benchmarks"
	@echo "make fuzz       run each fuzz target for FUZZTIME (default 30s)"

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/encwatch

# The daemon refuses a policy that is not root-owned or is group/world
# writable, so run starts from a root-owned copy of the repo's config.hcl.
run: build
	install -d -m 0750 $(RUNDIR)
	install -m 0600 config.hcl $(RUNDIR)/config.hcl
	./$(BIN) run --config $(RUNDIR)/config.hcl

test: test-deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 8m ./...

# Debian packages the tests need. Installing never starts their services:
# this machine's /usr/sbin/policy-rc.d forbids it, and we keep it that way.
TEST_PKGS := rsyslog rsyslog-gnutls
test-deps:
	@missing=""; for p in $(TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing test dependencies:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

vet:
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./audit/ ./detect/ ./internal/sink/

FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf bin dist
