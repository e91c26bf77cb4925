# Build: docker build -t mailgate .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/mailgate ./cmd/mailgate
# The runtime image has no shell to make directories: /data is made here and
# copied with its owner, so a fresh volume mounted there belongs to the
# runtime user too (Docker fills a new named volume from the image's
# directory, ownership included).
RUN mkdir -m 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mailgate /usr/local/bin/mailgate
COPY --from=build --chown=65532:65532 /out/data /data
# distroless "nonroot" is uid/gid 65532; said by number so that a
# runAsNonRoot check can verify it without reading /etc/passwd.
USER 65532:65532
VOLUME /data
ENV MAILGATE_DATA_DIR=/data MAILGATE_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
# /readyz of MAILGATE_HTTP_ADDR: NATS and storage reachable.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/mailgate", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/mailgate"]
CMD ["serve"]
