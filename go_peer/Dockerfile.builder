# Variant for CI that can pull images: compiles the peer inside the image build.
# The build context is a generated build copy, build/go/<digest>/src (go_peer's sources plus the
# generated gen/ code and internal/seeds/route_guide_db.json), e.g.:
#   python -m harness.codegen --lang go
#   docker build -f go_peer/Dockerfile.builder -t interop-peer build/go/<digest>/src
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -o /out/interop-peer ./cmd/interop-peer

FROM scratch
LABEL org.opencontainers.image.title="grpc-interop-harness go peer"
COPY --from=build /out/interop-peer /interop-peer
USER 65532:65532
EXPOSE 50051
ENTRYPOINT ["/interop-peer"]
CMD ["serve", "--addr", "0.0.0.0:50051"]
