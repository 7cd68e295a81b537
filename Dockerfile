# The one image for the API and the runners (`stoker serve`, `stoker runner`).
# torch comes from PyPI (a CUDA build); for CPU-only runners add
# --index-url https://download.pytorch.org/whl/cpu to the first install.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN pip install --no-cache-dir -c constraints.txt torch==2.13.0 \
 && pip install --no-cache-dir -c constraints.txt '.[local,postgresql,kubernetes]' \
 && useradd --create-home --uid 10001 stoker
USER stoker
ENTRYPOINT ["stoker"]
