# syntax=docker/dockerfile:1
# Build: docker build -t revhook:dev .
# CI replays the build stage without a Docker engine (.ci/dockerfile-replay).
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: source edits do not rebuild them. The manifest names
# its bench targets and does not parse without their files, so the real benches come along
# (a release build does not compile them); the library and binary are stubs.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
# The workspace's template engine crate (the manifest lists it as a member).
COPY crates ./crates
RUN mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin revhook

# Distroless: no shell, no package manager; runs as the nonroot user (65532). Nothing is
# written to the image's filesystem: the manifests mount the certificate read-only and set
# readOnlyRootFilesystem, so the default command names the mounted pair rather than letting
# `serve` generate dev certificates into the working directory.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/revhook /revhook
USER 65532:65532
EXPOSE 15017 15014
ENTRYPOINT ["/revhook"]
CMD ["serve", "--listen", "0.0.0.0:15017", "--admin-listen", "0.0.0.0:15014", "--tls-cert", "/etc/revhook/tls/tls.crt", "--tls-key", "/etc/revhook/tls/tls.key"]
