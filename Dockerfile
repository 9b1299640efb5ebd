# The egress proxy image: Node.js and the one bundled file, run as a non-root user on a
# read-only root filesystem (the proxy writes nothing; logs go to stdout).
#
#   docker build -t cdk8s-egress-proxy .      in a clone: bundles from source on the official Node images
#   docker build --build-arg BUNDLE_FROM=prebuilt -t cdk8s-egress-proxy .
#                                             in the npm package (node_modules/cdk8s-egress), which
#                                             ships the bundle but not the sources
#   scripts/build-image.sh                    in a clone, offline: prebuilt bundle on a locally
#                                             assembled base (README, "The image")
#
# NODE_VERSION is the Node.js LTS release the image runs (scripts/fetch-node.sh pins its binaries for
# the offline base). NODE_BASE is the runtime: anything with `node` (22+) on PATH; it needs no
# shell or package manager.
ARG NODE_VERSION=24.22.3
ARG NODE_BASE=docker.io/library/node:${NODE_VERSION}-trixie-slim
# BUILD_BASE only matters for BUNDLE_FROM=source: a full Node image with npm.
ARG BUILD_BASE=docker.io/library/node:${NODE_VERSION}-trixie
# source: npm ci + the projen bundle task inside the build; prebuilt: copy assets/proxy/main/index.js
# from the context (what CI tested is what it ships).
ARG BUNDLE_FROM=source

FROM ${BUILD_BASE} AS bundle-source
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY .projen/ .projen/
COPY tsconfig.json ./
COPY src/ src/
RUN npx projen bundle && mkdir -p /out && cp assets/proxy/main/index.js /out/index.js

FROM scratch AS bundle-prebuilt
COPY assets/proxy/main/index.js /out/index.js

# Only the selected stage is built (BuildKit and buildah skip unused stages). buildah 1.28 needs
# BUNDLE_FROM passed as --build-arg to resolve this name, and leaves the working container of an
# instruction-less stage behind; the label is there to avoid the latter.
FROM bundle-${BUNDLE_FROM} AS bundle
LABEL org.opencontainers.image.title="cdk8s-egress-proxy-bundle"

FROM ${NODE_BASE}
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="cdk8s-egress-proxy" \
      org.opencontainers.image.description="Egress proxy of cdk8s-egress: plaintext in, policy-checked and TLS-originated out, Linkerd-style metrics" \
      org.opencontainers.image.source="https://github.com/maintainers/cdk8s-egress" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# Owned by root and not writable: the runtime user can read the code but never change it.
COPY --from=bundle --chown=0:0 --chmod=0444 /out/index.js /app/index.js
ENV NODE_ENV=production
# Runtime memory settings, the same as src/internal/proxy-runtime.ts (PROXY_RUNTIME_ENV; a test
# keeps them equal): a young generation of 16 MiB per semi-space (Node 24 sizes it from the heap
# limit and keeps it resident), gc() for the idle memory reclaim, and two glibc malloc arenas (one
# per thread fragments).
ENV NODE_OPTIONS="--max-semi-space-size=16 --expose-gc" MALLOC_ARENA_MAX=2
WORKDIR /app
# Numeric, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
USER 65532:65532
# HTTP (plaintext in, forward proxy, CONNECT), TLS passthrough by SNI, admin (/metrics, /live, /ready).
EXPOSE 8080 8443 9901
ENTRYPOINT ["node", "/app/index.js"]
CMD ["--config", "/etc/egress/config.json"]
