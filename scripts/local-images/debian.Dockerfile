# Assembles courier-local/debian:trixie-slim (~ debian:trixie-slim) from the root file systems that
# scripts/build-local-images makes with mmdebstrap, one per platform: rootfs-<arch>.tar in the context.
FROM scratch
ARG TARGETARCH
ADD rootfs-${TARGETARCH}.tar /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["bash"]
