# Builds the Go peer inside a golang image, for machines with Docker but no Go toolchain (the harness
# does this by itself then: harness/protoset/gotoolchain.py) and for CI that can pull images.
# Needs `golang:1.26` from a registry (the harness never pulls it on purpose; Docker does on first use).
#
# Stages the harness uses (each leaves its results in /out, which the harness copies out):
#   tools  the pinned protoc plugins;  --build-arg PROTOC_GEN_GO=<module>@<v> PROTOC_GEN_GO_GRPC=<module>@<v>
#   build  one command of the module;  --build-arg TARGET=./cmd/interop-peer OUT=interop-peer
#          (or TARGET=./cmd/protoc-gen-interop OUT=protoc-gen-interop). Build context: a build copy,
#          <cache>/go/<digest>/src (go_peer's sources plus the generated gen/ code and the seed data).
# The last stage is the runtime image itself, for building it by hand:
#   grpc-interop gen --protos DIR     # prints the build copy, <cache>/go/<digest>/src
#   docker build -f <cache>/go/<digest>/src/Dockerfile.builder -t interop-peer <cache>/go/<digest>/src
FROM golang:1.26 AS tools
ARG PROTOC_GEN_GO
ARG PROTOC_GEN_GO_GRPC
RUN CGO_ENABLED=0 GOBIN=/out go install "$PROTOC_GEN_GO" \
 && CGO_ENABLED=0 GOBIN=/out go install "$PROTOC_GEN_GO_GRPC"

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGET=./cmd/interop-peer
ARG OUT=interop-peer
RUN CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -o "/out/$OUT" "$TARGET"

FROM scratch
LABEL org.opencontainers.image.title="grpc-interop-harness go peer"
COPY --from=build /out/interop-peer /interop-peer
USER 65532:65532
EXPOSE 50051
ENTRYPOINT ["/interop-peer"]
CMD ["serve", "--addr", "0.0.0.0:50051"]
