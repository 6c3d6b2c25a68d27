# Assembles courier-local/distroless-python3:nonroot (~ gcr.io/distroless/python3-debian13:nonroot)
# from the root file systems that scripts/build-local-images makes with mmdebstrap, one per
# platform: rootfs-<arch>.tar in the context.
FROM scratch
ARG TARGETARCH
ADD rootfs-${TARGETARCH}.tar /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/bin/python3.13"]
