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
# the RegNet fits' branch and bound (anynet/regnet_sweep.py, numba) compiled into the image:
# otherwise each container's first e_fit compiles it (about 6-9 s)
ENV NUMBA_CACHE_DIR=/home/dse/.cache/numba
RUN python -c "from anynet.regnet_fit import fit_many, fit_regnet; fit_regnet([16, 32, 40, 104, 104]); fit_many([[16, 32, 40, 104, 104]])"

EXPOSE 8000
CMD ["dse", "serve", "--workers", "0", "--host", "0.0.0.0"]
