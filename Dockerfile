# syntax=docker/dockerfile:1
# The vakt agent as a container image, in two targets:
#   docker build -t vakt .                      the production image (the last stage, the default):
#                                               no demo secrets, no sandbox certificates
#   docker build --target demo -t vakt:demo .   the demo: adds the sandbox's certificates and demo
#                                               secrets and runs `vakt demo`
#   docker run --read-only -v "$PWD/vakt:/etc/vakt:ro" -v vakt-state:/var/lib/vakt -p 9464:9464 vakt
# The entrypoint is the CLI, so the default command is `vakt run -c /etc/vakt/vakt.yaml` and any
# other subcommand works too: `docker run --rm vakt validate /etc/vakt/vakt.yaml`.
# Keep agent.listen on port 9464 (the default, 0.0.0.0:9464) for EXPOSE and the health check.
# The agent writes only its state file (agent.stateFile, e.g. /var/lib/vakt/state.json): it runs
# with a read-only root filesystem, a mounted config folder and a state volume
# (test/system/production-install.test.ts runs the same install that way).
#
# The base image is pinned to one Node 24 release, the same in every stage. To pin it by digest
# too (a tag can be moved; a digest cannot), look the digest up once and append it to each FROM:
#   docker buildx imagetools inspect node:24.22.3-slim     (the "Digest: sha256:..." line)
#   FROM node:24.22.3-slim@sha256:<that digest> AS build
# and let a bot (Renovate, Dependabot) move tag and digest together. test/unit/dockerfile.test.ts
# accepts both forms.

# --- build: compile the TypeScript sources to dist/ ---------------------------------------------
FROM node:24.22.3-slim AS build
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

# --- app: production dependencies, compiled code, default config; what both targets share -------
FROM node:24.22.3-slim AS app
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="vakt" \
      org.opencontainers.image.description="Synthetic monitoring and outage detection for hospital IT: DNS, firewall paths, logins, HL7/queues." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="docker.io/library/node:24.22.3-slim"
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; then the package managers go: nothing runs npm, npx, corepack or
# yarn at run time (the entrypoint is node), so they are only more code to patch.
# The user: a fixed uid/gid of its own (10001, no login, no home), numeric in USER below so that
# Kubernetes can check runAsNonRoot; /var/lib/vakt is its state folder (a volume in production:
# Docker gives a new named volume this folder's owner).
# iputils-ping: the icmp kind runs the system's ping (Node has no ICMP sockets); it needs no
# capability where net.ipv4.ping_group_range holds the agent's group (Docker's default range does;
# the Kubernetes manifests set it).
RUN apt-get update \
 && apt-get install -y --no-install-recommends iputils-ping \
 && rm -rf /var/lib/apt/lists/* \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /usr/local/bin/npm /usr/local/bin/npx \
      /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* /root/.npm \
 && groupadd --system --gid 10001 vakt \
 && useradd --system --no-log-init --uid 10001 --gid vakt --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin vakt \
 && mkdir -p /etc/vakt /var/lib/vakt \
 && chown vakt:vakt /var/lib/vakt
COPY --from=build /src/dist/ dist/
COPY bin/ bin/
COPY config/default.yaml config/
COPY --from=build /src/config/examples/ config/examples/
# The shipped alert rules, which `vakt rules` prints with a site's own alert timings.
COPY deploy/prometheus/vakt-rules.yml deploy/prometheus/
# The files stay owned by root and read-only for the agent.
USER 10001:10001
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9464/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "--single-threaded-gc", "--max-semi-space-size=4", "/app/bin/vakt.js"]
CMD ["run", "-c", "/etc/vakt/vakt.yaml"]

# --- demo: `docker build --target demo -t vakt:demo .` ------------------------------------------
# The sandbox's throw-away certificates and demo-only passwords (sandbox/certs/README.md,
# sandbox/secrets/README.md), which `vakt demo` needs and the production image must never carry.
# The sandbox listens on 127.0.0.1 inside the container; the agent on every address, so
# `docker run --rm -p 9464:9464 vakt:demo` shows the status page and metrics on the host. The
# fault switches (127.0.0.1:9465) are reachable with `--network host` instead of -p.
FROM app AS demo
LABEL org.opencontainers.image.title="vakt-demo" \
      org.opencontainers.image.description="vakt demo: the agent watching its built-in sandbox. Demo-only certificates and secrets; not for production."
COPY sandbox/certs/ sandbox/certs/
COPY sandbox/secrets/ sandbox/secrets/
CMD ["demo", "--listen", "0.0.0.0:9464"]

# --- production: the default target (the last stage) ---------------------------------------------
FROM app AS production
