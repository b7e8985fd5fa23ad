# InfluxDB 1.x from Debian's package: the stand-in for the compose file's influxdb:2.7, which has no
# Debian package. The daemon reaches it with an influxdb1:// URL (the same InfluxQL path 2.x/3.x serve).
ARG DEBIAN=localhost/iot-test/debian:bookworm
FROM ${DEBIAN}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends influxdb curl >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o influxdb -g influxdb /var/lib/influxdb
USER influxdb
ENV INFLUXDB_DATA_DIR=/var/lib/influxdb/data INFLUXDB_DATA_WAL_DIR=/var/lib/influxdb/wal \
    INFLUXDB_META_DIR=/var/lib/influxdb/meta INFLUXDB_REPORTING_DISABLED=true INFLUXDB_HTTP_LOG_ENABLED=false
EXPOSE 8086
CMD ["/usr/bin/influxd"]
