# line: a capacity scheduler built as an event-sourced service on Kafka.
GO      ?= go
PKGS    ?= ./...
# Benchmarks: BENCHTIME and COUNT tune `make bench`; CI runs a tiny size.
BENCHTIME ?= 1x
COUNT     ?= 3

.PHONY: run test bench bench-smoke lint build generate clean

## run: the whole system in one process on the embedded broker (data in ./.line)
run:
	$(GO) run ./cmd/line dev

## test: every test, with the race detector, on the embedded broker
test:
	$(GO) test -race -count=1 -timeout 45m $(PKGS)

# bench: BENCH_OUT gets results.json, logs and profiles; BENCH_ARGS adds
# flags to `line bench` (e.g. --evals 100000, --profile=false, --small).
BENCH_OUT  ?= bench-out
BENCH_ARGS ?=

## bench: the pure core's Go benchmarks at full size (go test -bench -benchmem, COUNT runs,
## medians) and the end-to-end scenarios on the embedded broker (line bench; see BENCHMARKS.md)
bench:
	$(GO) build -o bin/line ./cmd/line
	./bin/line bench --runs $(COUNT) --core-benchtime $(BENCHTIME) --out $(BENCH_OUT) $(BENCH_ARGS) all

## bench-smoke: compile and run every benchmark once at a tiny size (CI)
bench-smoke:
	LINE_BENCH_SMALL=1 $(GO) test -run '^$$' -bench . -benchtime 1x $(PKGS)

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## build: binaries into ./bin
build:
	$(GO) build -o bin/ ./cmd/...

## generate: regenerate api/api.gen.go from api/openapi.yaml (oapi-codegen v2.8.2)
generate:
	$(GO) generate ./api/

clean:
	rm -rf bin .line
