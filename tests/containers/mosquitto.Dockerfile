# Stand-in for eclipse-mosquitto:2 from Debian's package, same layout: /mosquitto/{config,data,log},
# user mosquitto with uid 1883, config at /mosquitto/config/mosquitto.conf.
ARG DEBIAN=localhost/iot-test/debian:bookworm
FROM ${DEBIAN}
RUN groupadd -r -g 1883 mosquitto && useradd -r -u 1883 -g mosquitto -d /mosquitto/data -s /usr/sbin/nologin mosquitto \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o mosquitto -g mosquitto /mosquitto/config /mosquitto/data /mosquitto/log
EXPOSE 1883
CMD ["/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]
