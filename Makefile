# trailhead — the two commands: `make run` and `make test`. Everything the tests need is
# installed by the targets below; nothing is assumed to be on the machine beyond its toolchains.

CARGO       ?= cargo
JOBS        ?= 2
VENV        := .venv
PYTHON      := $(VENV)/bin/python
PEERS       := tests/peers/bin
# No symbol table or DWARF in the Go peers: nothing reads them, and writing them slows each link.
GO_BUILD    := go build -ldflags="-s -w"
COLLECTOR   := $(PEERS)/otelcol-peer
HELM        := $(PEERS)/helm
APISERVER   := $(PEERS)/kube-apiserver
ETCD        := $(PEERS)/etcd
DAPR_PEER   := $(PEERS)/dapr-peer
REGISTRY    := $(PEERS)/registry-peer
FLUENT_NODE := tests/peers/fluent-node/node_modules/.installed
BINARY      := target/release/trailhead
DIST        := target/dist/trailhead
CONFIG      ?= config/trailhead.yaml

.PHONY: build bench-tools dist plugins rust-plugins deploy chart run test test-builds unit e2e e2e-parallel e2e-serial fuzz fuzz-smoke setup toolchain peers venv browser bench bench-compare lint clean

## build: the release binary at target/release/trailhead and every plugin at target/plugins/
build: plugins
	$(CARGO) build --release -j$(JOBS) -p trailhead

## bench-tools: the load generator, the sink and the measuring binaries (`make bench` only: no
## test runs them, and their links are minutes of CI's budget)
bench-tools:
	$(CARGO) build --release -j$(JOBS) -p trailhead-bench

## plugins: every plugin as a component → target/plugins/NAME.wasm: the Rust ones
## (wasm32-wasip2), and the Python (componentize-py) and JavaScript (componentize-js) examples
plugins: rust-plugins target/plugins/health-drop-py.wasm target/plugins/redact-js.wasm

rust-plugins: toolchain
	cd plugins && $(CARGO) build --release -j$(JOBS)
	mkdir -p target/plugins
	for f in target/wasm/wasm32-wasip2/release/*.wasm; do cp $$f target/plugins/$$(basename $$f .wasm | tr _ -).wasm; done

target/plugins/health-drop-py.wasm: plugins/examples/health-drop-py/app.py plugins/sdk-py/trailhead_sdk.py $(wildcard wit/0.2.0/*.wit) $(VENV)/.installed
	mkdir -p target/plugins
	$(VENV)/bin/componentize-py -d wit/0.2.0 -w processor componentize --stub-wasi app -p plugins/examples/health-drop-py -p plugins/sdk-py -o $@

target/plugins/redact-js.wasm: plugins/examples/redact-js/plugin.js plugins/sdk-js/trailhead.js $(wildcard wit/0.2.0/*.wit) plugins/node_modules/.installed
	mkdir -p target/plugins
	plugins/node_modules/.bin/componentize-js plugins/examples/redact-js/plugin.js -w wit/0.2.0 -n processor -d http -d fetch-event -o $@

plugins/node_modules/.installed: plugins/package.json plugins/package-lock.json
	cd plugins && npm ci --no-audit --no-fund
	touch $@

## run: trailhead on the default config (receivers on localhost, the debug exporter)
run: build
	$(BINARY) run --config $(CONFIG)

## test: install what the tests need, then run every test. CI's budget is 45 minutes on 2 cores.
## The Go peers and the Rust build run side by side first. Then the e2e tests run (they mostly
## wait on sockets and peers), and beside them, at the lowest CPU priority so the tests keep the
## CPU they ask for, the unit tests and the fuzz targets compile (`test-builds`, its output in
## target/test-builds.log). Then the unit tests and the fuzz smoke (one core each) run together.
test:
	$(MAKE) -j2 setup build
	@mkdir -p target && nice -n 19 $(MAKE) test-builds > target/test-builds.log 2>&1 & builds=$$!; \
	  $(MAKE) e2e; e2e=$$?; \
	  wait $$builds; compiled=$$?; cat target/test-builds.log; \
	  [ $$e2e -eq 0 ] && [ $$compiled -eq 0 ]
	$(MAKE) -j2 --output-sync=target unit fuzz-smoke

PLUGIN_TESTS := -p trailhead-ottl -p filter -p k8sattributes -p k8sattributes-settings -p pdata-text -p attraction -p attributes -p resource -p transform -p probabilistic-sampler -p redaction -p trailhead-plugin -p latency-sampler --target $$(rustc -vV | sed -n 's/^host: //p')

## test-builds: compiles what `unit` and `fuzz-smoke` run, without running it
test-builds: FUZZ_BUILD = --dev
test-builds: plugins venv $(CARGO_FUZZ)
	$(CARGO) test --release -j$(JOBS) -p trailhead --no-run
	cd plugins && $(CARGO) test -j$(JOBS) $(PLUGIN_TESTS) --no-run
	cd examples/profile-service && go vet ./... && go test -run '^$$' ./...
	cd fuzz && RUSTC_BOOTSTRAP=1 CARGO_BUILD_JOBS=$(JOBS) $(CARGO) fuzz build $(FUZZ_FLAGS)

# In the release profile, so the tests reuse what `build` compiled (wasmtime is large). Only
# trailhead's own package: `--workspace` would add the bench crate's features to shared
# dependencies (indexmap, digest), and that recompiled wasmtime, cranelift and the rest.
unit: plugins venv
	$(CARGO) test --release -j$(JOBS) -p trailhead
	cd plugins && $(CARGO) test -j$(JOBS) $(PLUGIN_TESTS)
	cd examples/profile-service && go vet ./... && go test ./...
	$(PYTHON) -m doctest plugins/sdk-py/trailhead_sdk.py
	node --test plugins/sdk-js/

# Two workers, a file each at a time; then the tests marked `serial` (bounds on memory that a
# test running beside them would move) with no other test beside them (`make test`'s niced
# compiles may run then: they take only the CPU the tests leave).
E2E_ENV := TRAILHEAD_BIN=$(BINARY) OTELCOL_BIN=$(COLLECTOR) KUBE_APISERVER_BIN=$(APISERVER) ETCD_BIN=$(ETCD) DAPR_PEER_BIN=$(DAPR_PEER)
e2e: e2e-parallel e2e-serial
e2e-parallel: build venv peers browser
	$(E2E_ENV) $(VENV)/bin/pytest -q -p no:warnings -n 2 --dist loadfile -m "not serial" tests/e2e
e2e-serial: build venv peers browser
	$(E2E_ENV) $(VENV)/bin/pytest -q -p no:warnings -m serial tests/e2e

## fuzz: each cargo fuzz target for FUZZ_SECONDS (default 600) from the seeds in fuzz/corpus (what it
## learns goes to fuzz/target/corpus); a crash lands in
## fuzz/artifacts/TARGET/: copy it into fuzz/corpus/TARGET/, where host/tests/integration/fuzz_corpus.rs replays it
## (cargo fuzz needs nightly flags: RUSTC_BOOTSTRAP lets the pinned stable toolchain take them)
FUZZ_SECONDS ?= 600
FUZZ_BUILD   ?= --release
FUZZ_TARGETS := otlp_protobuf otlp_json zipkin config
FUZZ_FLAGS    = $(FUZZ_BUILD) --sanitizer none
CARGO_FUZZ   := $(HOME)/.cargo/bin/cargo-fuzz
fuzz: $(CARGO_FUZZ)
	cd fuzz && for t in $(FUZZ_TARGETS); do mkdir -p target/corpus/$$t; \
	  RUSTC_BOOTSTRAP=1 CARGO_BUILD_JOBS=$(JOBS) $(CARGO) fuzz run $(FUZZ_FLAGS) $$t target/corpus/$$t corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 || exit 1; done

## fuzz-smoke: the same, a bounded 15 s each (part of `make test`), unoptimised: that build takes
## half the time on 2 cores, which CI's budget needs more than the fuzzer's speed
fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=15 FUZZ_BUILD=--dev

$(CARGO_FUZZ):
	$(CARGO) install cargo-fuzz --locked --version 0.13.2

setup: toolchain venv peers browser

# Once per make, before anything compiles for wasm: `make -j2` must not run two rustups at once.
toolchain:
	rustup component add rustfmt clippy >/dev/null 2>&1 || true
	rustup target add wasm32-wasip2

## venv: the OpenTelemetry SDKs and test tools from PyPI
venv: $(VENV)/.installed
$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
	touch $@

## browser: headless Chromium from Debian's packages (the console's test drives it with Playwright,
## which downloads no browser of its own) and axe-core from npm; installed only when missing
CONSOLE_NODE := tests/console/node_modules/.installed
browser: $(CONSOLE_NODE)
	test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation; }
$(CONSOLE_NODE): tests/console/package.json tests/console/package-lock.json
	cd tests/console && npm ci --no-audit --no-fund
	touch $@

## peers: the OpenTelemetry Collector, helm, kube-apiserver, etcd, Dapr's trace exporters (as
## its sidecar builds them) and an OCI registry (go-containerregistry's), built from their Go
## modules; fluent-logger for Node (from npm)
peers: $(COLLECTOR) $(HELM) $(APISERVER) $(ETCD) $(DAPR_PEER) $(REGISTRY) $(FLUENT_NODE)
$(COLLECTOR): tests/peers/collector/go.mod tests/peers/collector/main.go
	cd tests/peers/collector && $(GO_BUILD) -o ../bin/otelcol-peer .
$(HELM): tests/peers/helm/go.mod
	cd tests/peers/helm && $(GO_BUILD) -o ../bin/helm helm.sh/helm/v3/cmd/helm
$(APISERVER): tests/peers/kube/go.mod
	cd tests/peers/kube && $(GO_BUILD) -o ../bin/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
$(ETCD): tests/peers/etcd/go.mod
	cd tests/peers/etcd && $(GO_BUILD) -o ../bin/etcd go.etcd.io/etcd/server/v3
$(DAPR_PEER): tests/peers/dapr/go.mod tests/peers/dapr/main.go
	cd tests/peers/dapr && $(GO_BUILD) -o ../bin/dapr-peer .
$(REGISTRY): tests/peers/registry/go.mod tests/peers/registry/main.go
	cd tests/peers/registry && $(GO_BUILD) -o ../bin/registry-peer .
$(FLUENT_NODE): tests/peers/fluent-node/package.json tests/peers/fluent-node/package-lock.json
	cd tests/peers/fluent-node && npm ci --no-audit --no-fund
	touch $@

## deploy: install the stack into the current cluster (DRY_RUN=1: render to deploy/rendered/)
deploy: peers
	DRY_RUN=$(DRY_RUN) HELM=$(HELM) deploy/deploy.sh

## chart: trailhead's chart as a chart repository ("mathtrail-charts") in CHARTS: the packaged
## chart, its provenance file when CHART_SIGN_KEY names a key in CHART_KEYRING (a GnuPG secret
## keyring: `helm package --sign`), and index.yaml (CHARTS_URL: the absolute URL it will be served
## from; relative by default, which static hosting serves as it is). `helm push` the .tgz to an
## OCI registry instead, if you prefer one.
CHARTS ?= target/charts
chart: | $(HELM)
	mkdir -p $(CHARTS) && rm -f $(CHARTS)/trailhead-*.tgz $(CHARTS)/trailhead-*.tgz.prov
	$(HELM) package deploy/helm/trailhead -d $(CHARTS) $(if $(CHART_SIGN_KEY),--sign --key "$(CHART_SIGN_KEY)" --keyring "$(CHART_KEYRING)")
	$(HELM) repo index $(CHARTS) $(if $(CHARTS_URL),--url $(CHARTS_URL))

## dist: the binary as it ships, with fat LTO (Cargo.toml's `dist` profile) → target/dist/trailhead
dist:
	$(CARGO) build --profile dist -j$(JOBS) -p trailhead

## bench, bench-compare: trailhead, the collector and Rotel under the same load → BENCHMARKS.md
## (QUICK=1: 4 s per scenario and no swap run, a few minutes in all)
bench bench-compare: build bench-tools dist venv peers $(VENV)/.bench-peers
	QUICK=$(QUICK) $(PYTHON) bench/run.py --binary $(DIST) --loadgen target/release/trailhead-bench --out BENCHMARKS.md

$(VENV)/.bench-peers: bench/requirements.txt $(VENV)/.installed
	$(VENV)/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt
	touch $@

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -j$(JOBS) --workspace --all-targets -- -D warnings
	cd plugins && $(CARGO) fmt --all -- --check && $(CARGO) clippy --release -j$(JOBS) -- -D warnings

clean:
	rm -rf target $(VENV) $(PEERS)
