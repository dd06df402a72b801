# Stoke build, test and run targets. Everything a target needs is installed
# by the target itself (Go tools into ./bin/tools) or by .ci/run (apt packages).

SHELL     := /bin/bash
GO        ?= go
BIN       := bin/stoke
TOOLS     := $(CURDIR)/bin/tools
DATA_DIR  ?= $(CURDIR)/.stoke
PKGS      := ./...
# Test timeouts are generous ceilings, not expectations: a hung test must fail
# the run instead of eating CI's 90 minutes.
TEST_TIMEOUT ?= 25m

STATICCHECK_VERSION     := v0.8.2
PROTOC_GEN_GO_VERSION   := v1.36.12
PROTOC_GEN_GRPC_VERSION := v1.6.2

.PHONY: all build test test-short test-stress run cluster cluster-stop bench lint proto verify tools clean chaos

all: build

build:
	$(GO) build -o $(BIN) ./cmd/stoke

## test: the whole suite with the race detector (root runs the sandbox tests).
test: build
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

## test-short: skips the slow multi-node and real-process suites.
test-short:
	$(GO) test -race -count=1 -short -timeout 10m $(PKGS)

## test-stress: node's multi-node suites and the chaos smoke scenarios N
## times (default 3), with BURN=1 beside a CPU burner on one core; prints
## how many runs of each passed (.ci/stress).
N ?= 3
test-stress:
	N=$(N) BURN=$(BURN) GO=$(GO) .ci/stress

## run: one node on 127.0.0.1 with its data in ./.stoke.
run: build
	./$(BIN) agent --dev --data-dir $(DATA_DIR)

## cluster: three server nodes on 127.0.0.1 in the background, data and
## logs in ./.stoke-cluster/nodeN (HTTP 9201-9203); cluster-stop stops them.
cluster: build
	./$(BIN) dev --nodes 3 --dir $(CURDIR)/.stoke-cluster

cluster-stop:
	@if [ -x ./$(BIN) ]; then ./$(BIN) dev stop --dir $(CURDIR)/.stoke-cluster; fi

## bench: every benchmark, each beside its same-run baseline; the summary
## table at the top of docs/performance.md is regenerated from the run.
bench: build
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchtime 1s -timeout 90m $(PKGS) 2>&1 | \
		$(GO) run ./cmd/benchtable -doc docs/performance.md

## chaos: every chaos scenario (chaos/scenario) with each seed in SEEDS,
## results table written to docs/reliability.md. Repeat one run with
## make chaos SCENARIO=leader-kill SEED=2 (which leaves the table alone).
SEEDS ?= 1 2 3
chaos: build
	STOKE_CHAOS=full STOKE_CHAOS_SEEDS="$(or $(SEED),$(SEEDS))" STOKE_CHAOS_SCENARIO="$(SCENARIO)" \
	STOKE_CHAOS_BINARY=$(CURDIR)/$(BIN) STOKE_CHAOS_REPORT=$(if $(SEED)$(SCENARIO),,$(CURDIR)/docs/reliability.md) \
	$(GO) test -count=1 -v -timeout 60m -run TestScenarios ./chaos/scenario

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VERSION)

tools: $(TOOLS)/staticcheck $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc

lint: $(TOOLS)/staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(TOOLS)/staticcheck $(PKGS)

## proto: regenerate the committed protobuf and gRPC code.
proto: $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler"; exit 1; }
	cd proto && PATH=$(TOOLS):$$PATH protoc -I . \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative \
		$$(find . -name '*.proto' | sort)

## verify: generated code and go.mod are up to date.
verify: proto
	git diff --exit-code -- proto
	$(GO) mod tidy
	git diff --exit-code -- go.mod go.sum

clean:
	rm -rf bin
