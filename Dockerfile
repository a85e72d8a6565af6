# certmon: the SLA monitor of a national CERT.
# Set CERTMON_DATABASE_URL to use an external PostgreSQL; without it an embedded PostgreSQL keeps its data in
# /var/lib/certmon (mount a volume there).

# The builder turns the source tree into a wheel; the SQL ships inside it as the package certmon.sql.
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY certmon ./certmon
COPY sql ./sql
RUN pip wheel --no-cache-dir --no-deps -w /wheels .

# The image holds the installed wheel and its dependencies, not the source tree.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CERTMON_HOST=0.0.0.0 \
    CERTMON_PORT=8080 \
    CERTMON_DATA_DIR=/var/lib/certmon \
    CERTMON_LOG_FORMAT=json

# PDF reports: WeasyPrint draws them with Pango (HarfBuzz subsets the fonts it embeds) in Laksaman from
# fonts-thai-tlwg. Debian's security updates replace package versions, so they are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-thai-tlwg libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 certmon \
    && useradd --system --uid 10001 --gid certmon --home-dir /var/lib/certmon --create-home certmon

COPY --from=builder /wheels /tmp/wheels
RUN pip install --no-cache-dir /tmp/wheels/certmon-*.whl \
    && rm -rf /tmp/wheels

# Empty, and not writable by the service user: `python -c` (the health check) puts it on sys.path.
WORKDIR /app
USER 10001:10001
EXPOSE 8080
VOLUME ["/var/lib/certmon"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

CMD ["certmon", "serve"]
