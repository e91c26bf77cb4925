# Build: docker build -t mailgate .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/mailgate ./cmd/mailgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mailgate /usr/local/bin/mailgate
VOLUME /data
ENV MAILGATE_DATA_DIR=/data
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mailgate"]
CMD ["serve"]
