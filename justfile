# Contributor recipes. `just ci` runs exactly what CI runs (.ci/run).

default:
    @just --list

# Run the server on the embedded default (SQLite in ./data, in-process fan-out).
run:
    cargo run --release -p chat-server

fmt:
    cargo fmt --all

lint:
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Unit tests and SQLite-backed tests; PostgreSQL-backed tests skip when it is down.
test:
    cargo test --workspace --locked

# The same, with PostgreSQL/Redis-backed and S3 (moto_server) tests mandatory, as in CI.
test-services:
    CHAT_REQUIRE_SERVICES=1 CHAT_REQUIRE_S3=1 cargo test --workspace --locked

# Fuzz one target (ws_frame, e2e_envelope, sanitizer) for `seconds` (not part of CI). Needs
# `cargo install cargo-fuzz --locked`; RUSTC_BOOTSTRAP=1 lets the stable toolchain take the
# nightly-only sanitizer flags. The corpus grows in fuzz/corpus/<target>, crashes land in
# fuzz/artifacts/<target>.
fuzz target seconds="20":
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run {{target}} -- -max_total_time={{seconds}}

# Every fuzz target, one after the other.
fuzz-all seconds="20":
    for t in ws_frame e2e_envelope sanitizer; do just fuzz $t {{seconds}} || exit 1; done

# Build timings, to decide when a crate should split.
timings:
    cargo build --workspace --timings

ci:
    bash .ci/run

# Benchmark, quick profile (< 3 minutes): release build, then every scenario at small sizes.
# Writes docs/bench/results-quick.json and the SVG charts (docs/benchmarks.md).
bench:
    cargo build --release -p chat-server -p chat-bench
    target/release/chat-bench --profile quick

# Benchmark, full profile (< 15 minutes): issue 5's sizes.
bench-full:
    cargo build --release -p chat-server -p chat-bench
    target/release/chat-bench --profile full
