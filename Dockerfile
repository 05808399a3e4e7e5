# Production image: slim Python 3.11, non-root user `app`, the service only. Migrations are a separate one-shot
# run of `python -m app migrate` (compose.yaml's `migrate` service); concurrent runs serialise on a database lock.
#
# The base image is pinned by digest: python:3.11-slim-bookworm as Docker Hub published it on 2026-08-24 (a digest
# recorded then, not re-checked from this offline workplace). Before a release, check it with
# `docker buildx imagetools inspect python:3.11-slim-bookworm` and move it on with --build-arg PYTHON_IMAGE=...
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    APP_ENV=production HOST=0.0.0.0 PORT=8000 WORKERS=2 \
    UPLOAD_DIR=/srv/data/uploads

RUN groupadd --system app && useradd --system --gid app --home-dir /srv/app --no-create-home app
WORKDIR /srv/app

COPY requirements.txt .
RUN pip install --disable-pip-version-check -r requirements.txt

# The code stays root-owned (the service cannot change it); what the service writes lives under /srv/data.
COPY app ./app
COPY auth ./auth
COPY miniprogram_api ./miniprogram_api
COPY qr ./qr
# Citizens' uploaded materials with the local backend (STORAGE_BACKEND=local, one host): mount a volume at
# UPLOAD_DIR (a new named volume starts with this directory's owner, app; README "Production"). No VOLUME line:
# compose.yaml runs STORAGE_BACKEND=s3, which needs no volume, and a declared one would be created anyway.
# With s3 an upload streams to a scratch file in the system temporary directory (Python's tempfile: /tmp, as no
# TMPDIR is set) and is removed once it is in the bucket; so /tmp must stay writable for user app. The base image
# makes it 1777 (anyone writes, only the owner deletes): the build stops if a new base image changed that.
RUN mkdir -p /srv/data/uploads && chown -R app:app /srv/data && chmod 0750 /srv/data /srv/data/uploads \
 && test "$(stat -c %a /tmp)" = 1777

USER app
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request,os;urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz',timeout=2)"
CMD ["python", "-m", "app", "run"]
