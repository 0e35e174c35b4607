FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir uv==0.13.8 \
    && useradd --create-home --uid 10001 groupsync
WORKDIR /app

# Dependencies first, from the lock file, so code changes do not reinstall them.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

COPY --chown=groupsync:groupsync . .
USER groupsync
ENV DATABASE_URL=sqlite:////home/groupsync/var/groupsync.db LOG_FORMAT=json
# The admin API (set ADMIN_TOKEN, and ADMIN_HOST=0.0.0.0 to publish it). The health check
# asks /readyz on loopback: database reachable and schema at head (a standby is healthy).
EXPOSE 8765
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('ADMIN_PORT', '8765') + '/readyz', timeout=4)"]
CMD ["sh", "-c", "python main.py migrate && exec python main.py run"]
