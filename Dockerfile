# syntax=docker/dockerfile:1.7
# One image runs the API (default command), the worker (`node dist/worker.js`) and the
# migrations (`node dist/cli.js migrate`); compose and the Kubernetes manifests pick the command.
# Debian (glibc) rather than Alpine: onnxruntime-node ships glibc builds only.
ARG NODE_IMAGE=node:20.19-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# The typed client is an npm workspace, which npm ci expects to find.
COPY clients/typescript/package.json ./clients/typescript/
# --ignore-scripts: no install script may download anything (onnxruntime-node's would fetch
# GPU providers; it ships its CPU binaries in the package). package.json's allowScripts says
# the same to npm 11, but the base image's npm 10 does not read it.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund

FROM deps AS build
COPY tsconfig.json ./
COPY scripts/build.ts ./scripts/build.ts
COPY src ./src
# The web console is built here, with the dev dependencies (Vite, React) the runtime lacks.
COPY clients/typescript/src ./clients/typescript/src
COPY console ./console
RUN npm run build

FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY clients/typescript/package.json ./clients/typescript/
# onnxruntime-node carries every platform's runtime (about 290 MB); this image needs one, and
# the test fails the build should a new release move its binary.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && arch="$(node -p process.arch)" \
 && find node_modules/onnxruntime-node/bin/napi-v6 -mindepth 2 -maxdepth 2 -type d \
      ! -path "*/linux/${arch}" -exec rm -rf {} + \
 && test -f "node_modules/onnxruntime-node/bin/napi-v6/linux/${arch}/onnxruntime_binding.node"

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/app/data
WORKDIR /app
COPY --from=prod-deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --from=build --chown=root:root /app/console/dist ./console/dist
COPY --chown=root:root package.json ./
COPY --chown=root:root migrations ./migrations
COPY --chown=root:root models ./models
COPY --chown=root:root deploy/healthcheck.mjs ./deploy/healthcheck.mjs
# The code stays root-owned and read-only to the service; only the embedded data directory
# (unused in server mode) is writable. The image's `node` user is uid 1000.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 8000
# The slim base has no curl; a few lines of node ask /health. The worker's health check
# passes its own port as an argument.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "deploy/healthcheck.mjs"]
# close-with-grace turns SIGTERM into the graceful shutdown (readiness 503, drain, close).
STOPSIGNAL SIGTERM
# node as PID 1 directly (no npm, no shell), so signals reach the service.
CMD ["node", "dist/server.js"]
