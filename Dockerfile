# syntax=docker/dockerfile:1

# Node 26 is the Active LTS line (since October 2026); engines asks for >= 22.
# Build stage: compile TypeScript with the dev dependencies.
FROM node:26-trixie-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the prepare script would build before the sources are copied; the build runs below.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY app.ts server.ts ./
COPY cli ./cli
COPY lib ./lib
COPY plugins ./plugins
COPY routes ./routes
COPY schemas ./schemas
COPY scripts ./scripts
# tsconfig.build.json compiles the bench too, and the bench starts servers through test/support.
COPY bench ./bench
COPY test/support ./test/support
RUN npm run build && npm prune --omit=dev

# Runtime stage: production dependencies and the compiled server only, as a non-root user.
FROM node:26-trixie-slim
ENV NODE_ENV=production \
    SIMPLE_KV_CONFIG=/data/config.json
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /data && chown node:node /data && chmod 700 /data
USER node
VOLUME ["/data"]
EXPOSE 23849
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:23849/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Inside the container the server must listen on every interface; the port is published by Docker.
# Exec form, node itself as PID 1: `docker stop` delivers SIGTERM to the server, which finishes
# requests in flight and flushes its stores. (Not `npm start` or `npx`: npm would get the signal.)
CMD ["node", "dist/server.js", "--host", "0.0.0.0", "--port", "23849"]
