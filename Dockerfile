# syntax=docker/dockerfile:1
#
# claimx-connect image: a static Go binary on distroless, non-root, with the
# pipelines at /etc/claimx-connect/pipelines and the table schema at
# /etc/claimx-connect/schemas.
#
#   docker build \
#     --build-arg VERSION="$(git describe --tags --always --dirty)" \
#     --build-arg COMMIT="$(git rev-parse --short HEAD)" \
#     --build-arg DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
#     -t claimx-connect:dev .
#
# The default command runs every stream (trigger, worker, forms, status, alerts,
# sla and quality) in one process; every file of pipelines/resources is built, so ITEL_API_TOKEN
# (or ITEL_API_AUTH_TYPE=none) must be set besides CLAIMX_API_TOKEN:
#   docker run --rm -p 4195:4195 --env-file .env claimx-connect:dev
# Run one stream only by overriding the command, for example the worker:
#   docker run ... claimx-connect:dev streams -r '/etc/claimx-connect/pipelines/resources/*.yaml' \
#     /etc/claimx-connect/pipelines/worker.yaml
#
# Health: the image has no shell, so there is no HEALTHCHECK instruction. The
# HTTP server on 4195 answers GET /ping (the process is up: liveness) and
# GET /ready (every input and output is connected: readiness). Use them from
# the orchestrator (compose healthcheck cannot run curl here either; see
# deploy/compose, deploy/k8s and docs/OPERATIONS.md).
#
# tests/docker/check_dockerfile.sh checks this file offline (no Docker engine):
# COPY sources exist, the build context after .dockerignore builds with the
# RUN line below, the binary is static, and the CMD's files are in the image
# layout.

ARG GO_VERSION=1.26

# ---- build ----------------------------------------------------------------
FROM golang:${GO_VERSION} AS build
WORKDIR /src

# Dependencies first, so source edits do not re-download modules.
COPY go.mod go.sum ./
RUN go mod download

COPY . .

# Same flags as `make build` (Makefile: LDFLAGS).
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" -o /out/claimx-connect .

# An empty, non-root-owned /data for a local Delta table (a mounted volume
# replaces it; in Kubernetes the table lives on object storage instead).
RUN mkdir -p /out/data

# ---- runtime --------------------------------------------------------------
# distroless static: CA certificates, tzdata, /etc/passwd with nonroot (65532);
# no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="claimx-connect" \
      org.opencontainers.image.description="Redpanda Connect distribution for ClaimX event pipelines" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"

COPY --from=build /out/claimx-connect /usr/local/bin/claimx-connect
COPY pipelines/ /etc/claimx-connect/pipelines/
COPY schemas/ /etc/claimx-connect/schemas/
COPY --from=build --chown=65532:65532 /out/data /data

# Relative paths in the pipelines (./schemas/..., ./pipelines/...) resolve
# from here; the schema and mapping files are also given absolutely, and the
# Delta tables (tracking, forms, attachments, submissions, SLA, quality
# results) and the forms' photos live under /data.
WORKDIR /etc/claimx-connect
ENV ITEL_SCHEMA_FILE=/etc/claimx-connect/schemas/itel_cabinet_task_tracking.yaml \
    DELTA_TABLE_URI=/data/itel_cabinet_task_tracking \
    ITEL_FORMS_SCHEMA_FILE=/etc/claimx-connect/schemas/itel_cabinet_forms.yaml \
    ITEL_ATTACHMENTS_SCHEMA_FILE=/etc/claimx-connect/schemas/itel_cabinet_attachments.yaml \
    ITEL_SUBMISSIONS_SCHEMA_FILE=/etc/claimx-connect/schemas/itel_cabinet_submissions.yaml \
    ITEL_SUBMISSION_SCHEMA=/etc/claimx-connect/schemas/itel_submission.v1.json \
    ITEL_FORM_MAPPING=/etc/claimx-connect/pipelines/forms/itel_cabinet_form.yaml \
    ITEL_FORMS_TABLE_URI=/data/itel_cabinet_forms \
    ITEL_ATTACHMENTS_TABLE_URI=/data/itel_cabinet_attachments \
    ITEL_SUBMISSIONS_TABLE_URI=/data/itel_cabinet_submissions \
    ITEL_ATTACHMENTS_URI=/data/itel_cabinet_attachment_files \
    ITEL_SLA_TABLE_URI=/data/itel_cabinet_task_sla \
    ITEL_SLA_SCHEMA_FILE=/etc/claimx-connect/schemas/itel_cabinet_task_sla.yaml \
    QUALITY_EXPECTATIONS_FILE=/etc/claimx-connect/pipelines/quality/expectations.yaml \
    QUALITY_RESULTS_TABLE_URI=/data/_quality_results \
    QUALITY_CLAIMS_URI=/data/_quality_claims \
    QUALITY_RESULTS_SCHEMA_FILE=/etc/claimx-connect/schemas/quality_results.yaml

USER 65532:65532
EXPOSE 4195

ENTRYPOINT ["claimx-connect"]
CMD ["streams", "-r", "/etc/claimx-connect/pipelines/resources/*.yaml", "/etc/claimx-connect/pipelines/trigger.yaml", "/etc/claimx-connect/pipelines/worker.yaml", "/etc/claimx-connect/pipelines/forms.yaml", "/etc/claimx-connect/pipelines/status.yaml", "/etc/claimx-connect/pipelines/alerts.yaml", "/etc/claimx-connect/pipelines/sla.yaml", "/etc/claimx-connect/pipelines/quality.yaml"]
