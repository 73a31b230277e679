# celerity — make targets. `make test` is what CI runs (through .ci/run).
GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 10s
BENCHTIME ?= 1s
TESTFLAGS ?= -timeout 8m

.PHONY: test vet race allocs fuzz bench bench-system lint demo

test: vet race allocs

vet:
	$(GO) vet $(PKGS)

# Every test, including the broker integration and Python interop suites,
# under the race detector.
race:
	$(GO) test -race -count=1 $(TESTFLAGS) $(PKGS)

# Allocation budgets (testing.AllocsPerRun) live in //go:build !race files:
# the race detector allocates, so they run in a pass of their own.
allocs:
	$(GO) test -count=1 -run 'Allocs' $(TESTFLAGS) $(PKGS)

# Each fuzz target for FUZZTIME (go test -fuzz takes one target at a time).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# Micro benchmarks beside the code.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

# Whole-system figures with `celerity bench` (memory transport by default;
# BENCHFLAGS='--broker redis://127.0.0.1:6379/14 --compare celery' for more).
BENCHFLAGS ?=
bench-system:
	$(GO) run ./cmd/celerity bench $(BENCHFLAGS)

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi

# The embedded demo: producer and worker in one process on the memory transport.
demo:
	$(GO) run ./cmd/celerity demo
