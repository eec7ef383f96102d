# Dockerfile: tidepool built from this tree on Debian 12 and installed from
# its own .deb (cpack -G DEB), so the image runs what `apt-get install
# ./tidepool_*.deb` installs: /usr/bin/tidepool as the user tidepool.
# docker-compose.yml mounts docker/tidepool.ini over the configuration.
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libuv1-dev libpq-dev libinih-dev libssl-dev libsystemd-dev \
      dpkg-dev file
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
      -DTIDEPOOL_BUILD_TESTS=OFF \
    && cmake --build /build -j"$(nproc)" \
    && cd /build && cpack -G DEB

FROM debian:12
COPY --from=build /build/tidepool_*.deb /tmp/
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends /tmp/tidepool_*.deb \
    && rm -rf /var/lib/apt/lists/* /tmp/tidepool_*.deb
COPY docker/tidepool.ini /etc/tidepool/tidepool.ini
COPY docker/userlist.txt /etc/tidepool/userlist.txt
USER tidepool
EXPOSE 6432
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tidepool"]
CMD ["/etc/tidepool/tidepool.ini"]
