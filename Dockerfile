# Production image: slim Python 3.11, non-root, migrations then Sanic with WORKERS from the environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    APP_ENV=production HOST=0.0.0.0 PORT=8000 WORKERS=2

RUN groupadd --system app && useradd --system --gid app --home /srv/app app
WORKDIR /srv/app

COPY requirements.txt .
RUN pip install --disable-pip-version-check -r requirements.txt

COPY app ./app
COPY auth ./auth
COPY miniprogram_api ./miniprogram_api
COPY qr ./qr

USER app
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request,os;urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz',timeout=2)"
# Production never migrates implicitly: the explicit migrate command runs first.
CMD ["sh", "-c", "python -m app migrate && exec python -m app run"]
