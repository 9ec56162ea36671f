# syntax=docker/dockerfile:1
# Build: docker build -t revhook:dev .
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: source edits do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/inject.rs \
    && cargo build --release --locked \
    && rm -rf src benches
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin revhook

# Distroless: no shell, no package manager; runs as the nonroot user (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/revhook /revhook
USER 65532:65532
EXPOSE 15017 15014
ENTRYPOINT ["/revhook"]
CMD ["serve", "--listen", "0.0.0.0:15017", "--admin-listen", "0.0.0.0:15014"]
