FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY ingest ingest
COPY registry registry
COPY simulators simulators
COPY iot iot
RUN pip install --no-cache-dir .
USER nobody
ENV IOT_DATA_DIR=/tmp/iot-data
ENTRYPOINT ["iot"]
