# syntax=docker/dockerfile:1
# The vakt agent as a container image.
#   docker build -t vakt .
#   docker run -v "$PWD/vakt.yaml:/etc/vakt/vakt.yaml:ro" -p 9464:9464 vakt
# The entrypoint is the CLI, so the default command is `vakt run -c /etc/vakt/vakt.yaml` and any
# other subcommand works too: `docker run --rm vakt validate /etc/vakt/vakt.yaml`.
# Keep agent.listen on port 9464 (the default, 0.0.0.0:9464) for EXPOSE and the health check.

# --- build: compile the TypeScript sources to dist/ ---------------------------------------------
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are copied; the build runs below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY agent/ agent/
COPY probes/ probes/
COPY config/ config/
COPY sandbox/ sandbox/
# config/examples/ may be empty, and git does not keep empty folders: make sure it exists so the
# runtime stage can always copy it.
RUN npm run build && mkdir -p config/examples

# --- runtime: production dependencies, compiled code, default config, no build tools -------------
FROM node:24-slim AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="vakt" \
      org.opencontainers.image.description="Synthetic monitoring and outage detection for hospital IT: DNS, firewall paths, logins, HL7/queues." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="docker.io/library/node:24-slim"
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist/ dist/
COPY bin/ bin/
COPY config/default.yaml config/
COPY --from=build /src/config/examples/ config/examples/
COPY sandbox/certs/ sandbox/certs/
COPY sandbox/secrets/ sandbox/secrets/
# The files stay owned by root and read-only for the agent; it writes nothing to disk.
USER node
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9464/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "--single-threaded-gc", "--max-semi-space-size=4", "/app/bin/vakt.js"]
CMD ["run", "-c", "/etc/vakt/vakt.yaml"]
