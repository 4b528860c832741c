# One image for the api and the workers. The CUDA wheels of torch come from PyPI's default
# index; the same image runs on CPU when no GPU is reserved.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
# glibc keeps training activations mapped between steps (worker/allocator.py: 1.2-2x here)
ENV MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824
WORKDIR /app

COPY pyproject.toml README.md ./
COPY anynet ./anynet
COPY search ./search
COPY worker ./worker
COPY api ./api
RUN pip install --disable-pip-version-check . \
    && useradd --create-home --uid 1000 dse
USER dse

EXPOSE 8000
CMD ["dse", "serve", "--workers", "0", "--host", "0.0.0.0"]
