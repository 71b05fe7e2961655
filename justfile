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

# The same, with PostgreSQL-backed tests mandatory.
test-services:
    CHAT_REQUIRE_SERVICES=1 cargo test --workspace --locked

# Build timings, to decide when a crate should split.
timings:
    cargo build --workspace --timings

ci:
    bash .ci/run
