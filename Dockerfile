# Dockerfile: tidepool built from this tree on Debian 12.
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
      build-essential cmake pkg-config libuv1-dev libpq-dev libinih-dev libssl-dev libsystemd-dev check
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release && cmake --build /build -j"$(nproc)" --target tidepool

FROM debian:12
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y libuv1 libpq5 libinih1 libssl3 libsystemd0 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/tidepool /usr/bin/tidepool
COPY docker/tidepool.ini /etc/tidepool/tidepool.ini
COPY docker/userlist.txt /etc/tidepool/userlist.txt
EXPOSE 6432
ENTRYPOINT ["/usr/bin/tidepool", "/etc/tidepool/tidepool.ini"]
